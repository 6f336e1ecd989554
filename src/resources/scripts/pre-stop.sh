#!/bin/sh
# Before mysqld stops (a pod deletion, a drain, an eviction): a writable primary with replicas
# waits until the operator, which sees the pod being deleted, has switched over and made this
# instance read-only. The clients then see a switchover's short write gap, not a failover's.
# Bounded by PRE_STOP_WAIT_SECONDS; any trouble ends the wait, never the shutdown.
set -u

client() { mysql --defaults-extra-file=/var/run/sakila/probe.cnf -N -B -e "$1" 2>/dev/null; }
deadline=$(( $(date +%s) + ${PRE_STOP_WAIT_SECONDS:-60} ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  read_only=$(client 'SELECT @@global.super_read_only') || exit 0
  [ "$read_only" = 0 ] || exit 0
  # Nobody acknowledges: no replica could take over.
  replicas=$(client "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_clients'" | cut -f2)
  [ "${replicas:-0}" -gt 0 ] 2>/dev/null || exit 0
  sleep 0.5
done
exit 0
