#!/bin/sh
# The chaos writer, run in a client pod: INSERTs one row per transaction through the primary
# Service and records each acknowledged id with its acknowledgement time (ns since the epoch) in
# /tmp/acked, until SECONDS have passed or /tmp/stop exists.
#
# Usage: writer.sh SECONDS PRIMARY_HOST ROOT_PASSWORD
#
# Every id is tried once; only an acknowledged INSERT is recorded. A failed or timed-out attempt
# is not retried, so a recorded id is exactly an acknowledged commit. The timeout keeps a commit
# that waits for acknowledgements (a primary cut off from its replicas) from stalling the
# writer: such a commit is not acknowledged. Ids start from the clock, so later writers never
# reuse one.
#
# An attempt starts every PACE seconds whether or not the ones before it have ended, so the
# record shows when writes succeed again to within PACE: one after the other, an attempt stuck
# on a server that no longer answers would hide the recovery for up to its whole timeout.
# Attempts overlap only while writes hang; the lines of /tmp/acked may then be out of order.
seconds=$1 primary=$2 password=$3
pace=0.1
end=$(( $(date +%s) + seconds ))
i=$(( $(date +%s) * 1000000 ))
attempt() {
  if timeout 3 mysql -h "$primary" -uroot -p"$password" --connect-timeout=2 \
      -e "INSERT INTO chaos.log VALUES ($1)" 2>/dev/null; then
    echo "$1 $(date +%s%N)"
  fi
}
while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  i=$((i + 1))
  attempt "$i" &
  sleep "$pace"
done > /tmp/acked 2>&1
wait
