#!/bin/sh
# Before mysqld stops (a pod deletion, a drain, an eviction): a writable primary with replicas
# waits until the operator, which sees the pod being deleted, has switched over: first until
# this instance is read-only, then (briefly) until its replicas have been pointed at the new
# primary. The clients then see a switchover's short write gap, not a failover's.
# Bounded by PRE_STOP_WAIT_SECONDS; any trouble ends the wait, never the shutdown.
set -u

client() { mysql --defaults-extra-file=/var/run/sakila/probe.cnf -N -B -e "$1" 2>/dev/null; }
acknowledging() { client "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_clients'" | cut -f2; }
now() { date +%s; }
deadline=$(( $(now) + ${PRE_STOP_WAIT_SECONDS:-60} ))

# Nobody acknowledges (a replica, a single instance): no one could take over.
replicas=$(acknowledging) || exit 0
[ "${replicas:-0}" -gt 0 ] 2>/dev/null || exit 0

while [ "$(now)" -lt "$deadline" ]; do
  read_only=$(client 'SELECT @@global.super_read_only') || exit 0
  [ "$read_only" = 1 ] && break
  sleep 0.5
done
# Demoted: give the switchover a few seconds to re-point the replicas away from here.
settle=$(( $(now) + 5 ))
while [ "$(now)" -lt "$settle" ] && [ "$(now)" -lt "$deadline" ]; do
  replicas=$(acknowledging) || exit 0
  [ "${replicas:-0}" -gt 0 ] 2>/dev/null || exit 0
  sleep 0.5
done
exit 0
