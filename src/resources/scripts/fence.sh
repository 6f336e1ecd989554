#!/bin/sh
# Self-fence, in the pod next to mysqld. A primary that the operator can no longer reach cannot be
# demoted by it; the operator fails over once the primary's lease (renewed on every probe it
# answers) has expired plus a margin. Before that, this loop makes the old primary read-only
# itself if it finds itself writable, its lease expired, and no replica answering: cut off from
# both the operator and its replicas, it is the side of a partition that must stop writing.
# With a replica answering it stays as it is (the operator alone is down: nothing to fence).
# A commit waiting for acknowledgements blocks super_read_only, so clients are disconnected first,
# and mysqld is shut down (it restarts read-only) if that is not enough.
set -u
# PID 1 of its container: without a handler SIGTERM would be ignored, and every pod deletion
# would wait out the whole grace period. The loop's sleep ends before the trap runs.
# Its timings are the operator's (resources/config_map.rs): the failover's margin counts on them.
trap 'exit 0' TERM INT

cnf=/var/run/sakila/probe.cnf
client() { mysql --defaults-extra-file="$cnf" -N -B "$@" 2>/dev/null; }
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }

# A password rotation (controller/password_rotation.rs) records the probe account's new password
# once every instance accepts it; the kubelet brings the record here. probe.cnf, which every probe
# and the exporter read, switches to it once it works, before the old one is discarded.
recorded=/etc/sakila-passwords/probe-password
in_use=
follow_probe_password() {
  [ -s "$recorded" ] || return 0
  password=$(cat "$recorded")
  [ "$password" != "$in_use" ] || return 0
  if grep -qxF "password = \"$password\"" "$cnf"; then in_use=$password; return 0; fi
  (umask 077; printf '[client]\nuser = %s\npassword = "%s"\nsocket = %s\n' @PROBE_USER@ \
    "$password" /var/run/mysqld/mysqld.sock > "$cnf.new")
  if mysql --defaults-extra-file="$cnf.new" -N -B -e "SELECT 1" >/dev/null 2>&1; then
    mv "$cnf.new" "$cnf"
    in_use=$password
    log "the probe account's password changed: probe.cnf follows"
  else
    rm -f "$cnf.new"
  fi
}

while true; do
  sleep @FENCE_LOOP_SECONDS@
  follow_probe_password
  state=$(client -e "SELECT @@global.super_read_only, @@global.rpl_semi_sync_source_enabled, \
    expires < NOW(6), peers FROM @LEASE_TABLE@ WHERE id = 1") || continue
  [ -n "$state" ] || continue
  # shellcheck disable=SC2086 # the peers are a space-separated list
  set -- $state
  [ "$1" = 0 ] && [ "$2" = 1 ] && [ "$3" = 1 ] || continue
  shift 3
  # The peers are the replicas' addresses and stable names (a replica re-created while the
  # operator is away has a new address). All at once and at most 1 s each: a name needs a DNS
  # lookup, which a partition stalls, and the failover's margin counts on this bound.
  # SIGKILL: mysqladmin does not end on SIGTERM while it waits in the resolver, and a partition
  # test saw one check take 14 s that way, so the operator promoted before the fence.
  pids=
  for peer in "$@"; do
    # 0 whenever a server answers, even with "access denied" (this account is local-only).
    timeout -s KILL @FENCE_PING_SECONDS@ mysqladmin --defaults-extra-file="$cnf" --protocol=tcp \
      -h "$peer" --connect-timeout=@FENCE_PING_SECONDS@ ping >/dev/null 2>&1 &
    pids="$pids $!"
  done
  isolated=yes
  for pid in $pids; do
    if wait "$pid"; then isolated=no; fi
  done
  [ "$isolated" = yes ] || continue
  log "writable primary with an expired lease and no replica answering ($*): fencing"
  kills=$(client -e "SELECT GROUP_CONCAT(CONCAT('KILL ', id) SEPARATOR '; ') \
    FROM information_schema.processlist WHERE user NOT IN ('system user', 'event_scheduler', \
    '@OPERATOR_USER@', '@REPLICATION_USER@', '@CLONE_USER@', '@PROBE_USER@') AND id <> CONNECTION_ID()")
  if [ -n "$kills" ] && [ "$kills" != NULL ]; then client -e "$kills"; fi
  if timeout @FENCE_READ_ONLY_SECONDS@ mysql --defaults-extra-file="$cnf" \
      -e "SET GLOBAL super_read_only = ON" 2>/dev/null; then
    log "fenced: super_read_only is on"
  else
    log "super_read_only did not take within @FENCE_READ_ONLY_SECONDS@ s: shutting mysqld down (it restarts read-only)"
    client -e "SHUTDOWN"
  fi
done
