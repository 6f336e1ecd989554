#!/bin/sh
# Readiness: mysqld accepts connections and is in the state its role label (set by the operator,
# seen through the downward API) promises. A primary must be writable; a replica must be
# read-only, replicating from its source with both threads running, at most
# MAX_REPLICA_LAG_SECONDS behind. Only ready pods receive client traffic.
set -eu

client() { mysql --defaults-extra-file=/var/run/sakila/probe.cnf "$@"; }
role=$(sed -n 's/^mysql\.sakila\.dev\/role="\(.*\)"$/\1/p' /etc/podinfo/labels)
super_read_only=$(client -N -B -e 'SELECT @@global.super_read_only')

case "$role" in
  primary) [ "$super_read_only" = 0 ] ;;
  replica)
    [ "$super_read_only" = 1 ] || exit 1
    status=$(client --vertical -e 'SHOW REPLICA STATUS')
    field() { printf '%s\n' "$status" | sed -n "s/^ *$1: //p"; }
    [ "$(field Replica_IO_Running)" = Yes ] || exit 1
    [ "$(field Replica_SQL_Running)" = Yes ] || exit 1
    lag=$(field Seconds_Behind_Source)
    [ -n "$lag" ] && [ "$lag" != NULL ] && [ "$lag" -le "${MAX_REPLICA_LAG_SECONDS:-30}" ]
    ;;
  *) true ;;
esac
