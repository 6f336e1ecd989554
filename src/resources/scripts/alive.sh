#!/bin/sh
# Liveness: the server process answers at all (an "access denied" still proves it is alive).
exec mysqladmin --defaults-extra-file=/var/run/sakila/probe.cnf --connect-timeout=5 ping
