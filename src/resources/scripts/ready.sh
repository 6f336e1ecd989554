#!/bin/sh
# Readiness: mysqld accepts connections and its read-only state matches the role the operator
# gave this pod (the role label, seen through the downward API). A primary that is still
# read-only, or a replica that is writable, must not receive client traffic.
set -eu

role=$(sed -n 's/^mysql\.sakila\.dev\/role="\(.*\)"$/\1/p' /etc/podinfo/labels)
super_read_only=$(mysql --defaults-extra-file=/var/run/sakila/probe.cnf -N -B \
  -e 'SELECT @@global.super_read_only')

case "$role" in
  primary) [ "$super_read_only" = 0 ] ;;
  replica) [ "$super_read_only" = 1 ] ;;
  *) true ;;
esac
