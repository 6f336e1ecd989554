#!/bin/sh
# The chaos sampler, run in a client pod: every 200 ms reads each instance's read_only and
# records, in /tmp/writable, the time (ns since the epoch) and how many instances were writable,
# until SECONDS have passed or /tmp/stop exists.
#
# Usage: sampler.sh SECONDS ROOT_PASSWORD HOST...
#
# Writable means what a client sees: read_only off. The operator sets and clears it together
# with super_read_only, except while a replica is re-cloned (the clone drops its user data,
# which super_read_only refuses; read_only stays on).
#
# The instances are read one after the other, so one round's reads are no snapshot: a round
# that reads the old primary just before a switchover demotes it and the new one just after it
# is promoted saw two writable instances that never were writable together. An instance counts
# as writable in a round only if this round's read and the previous round's both said so: every
# read of the previous round came before every read of this one, so two instances counted in
# one round were both writable at the moment between the rounds.
seconds=$1 password=$2
shift 2
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  writable=0 instance=0
  for host in "$@"; do
    instance=$((instance + 1))
    value=$(timeout 2 mysql -h "$host" -uroot -p"$password" --connect-timeout=2 -N -B \
      -e 'SELECT @@global.read_only' 2>/dev/null)
    now=0
    [ "$value" = 0 ] && now=1
    eval "before=\${was_$instance:-0}"
    [ "$now" = 1 ] && [ "$before" = 1 ] && writable=$((writable + 1))
    eval "was_$instance=$now"
  done
  echo "$(date +%s%N) $writable"
  sleep 0.2
done > /tmp/writable 2>&1
