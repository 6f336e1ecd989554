#!/bin/sh
# Runs in the init container before every mysqld start.
# 1. Writes the instance's identity (server_id, report_host), derived from the pod's ordinal so it
#    is unique in the cluster and stable across restarts.
# 2. Writes the client options the probes use, so no password appears on a command line.
# 3. On the very first start only, initialises the data directory and creates the accounts.
set -eu

ordinal="${POD_NAME##*-}"
runtime=/var/run/sakila
datadir=/var/lib/mysql/data

cat > "$runtime/instance.cnf" <<CNF
[mysqld]
server_id = $((ordinal + 1))
report_host = ${POD_NAME}.${SERVICE_NAME}.${POD_NAMESPACE}.svc
CNF

# The probe's password as the servers have it: the operator's record once it has one (a rotation
# may not have reached the servers yet when the credentials Secret already holds the new one).
probe_password="$PROBE_PASSWORD"
if [ -s /etc/sakila-passwords/probe-password ]; then
  probe_password=$(cat /etc/sakila-passwords/probe-password)
fi
umask 077
cat > "$runtime/probe.cnf" <<CNF
[client]
user = @PROBE_USER@
password = "${probe_password}"
socket = /var/run/mysqld/mysqld.sock
CNF

if [ -d "$datadir/mysql" ]; then
  echo "data directory already initialised; instance ${ordinal}"
  exit 0
fi

# SQL string literal escaping: backslash and single quote.
sql_string() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }

# Replication and clone donors: separate accounts, each with its privilege only; a Secret from
# before the clone account (no CLONE_PASSWORD) gets the accounts as they were then, so that every
# data directory of that cluster has the same ones.
donor_accounts() {
  if [ -n "${CLONE_PASSWORD:-}" ]; then
    echo "GRANT REPLICATION SLAVE ON *.* TO '@REPLICATION_USER@'@'%';"
    echo "CREATE USER '@CLONE_USER@'@'%' IDENTIFIED BY $(sql_string "$CLONE_PASSWORD") PASSWORD EXPIRE NEVER;"
    echo "GRANT BACKUP_ADMIN ON *.* TO '@CLONE_USER@'@'%';"
  else
    echo "GRANT REPLICATION SLAVE, REPLICATION CLIENT, BACKUP_ADMIN ON *.* TO '@REPLICATION_USER@'@'%';"
  fi
}

init_sql="$runtime/init.sql"
# sql_log_bin=0: the accounts exist on every instance by construction; binlogging them would give
# each instance GTIDs of its own, which replication would then see as errant transactions.
# PASSWORD EXPIRE NEVER: the operator's own accounts must not expire when a user sets
# default_password_lifetime, or the operator, replication and the probes would be locked out.
# root is the user's account and follows the user's policy.
cat > "$init_sql" <<SQL
SET SESSION sql_log_bin = 0;
ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$ROOT_PASSWORD");
CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$ROOT_PASSWORD");
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE USER '@OPERATOR_USER@'@'%' IDENTIFIED BY $(sql_string "$OPERATOR_PASSWORD") PASSWORD EXPIRE NEVER;
@OPERATOR_GRANTS@
CREATE USER '@REPLICATION_USER@'@'%' IDENTIFIED BY $(sql_string "$REPLICATION_PASSWORD") PASSWORD EXPIRE NEVER;
$(donor_accounts)
CREATE USER '@PROBE_USER@'@'localhost' IDENTIFIED BY $(sql_string "$PROBE_PASSWORD") PASSWORD EXPIRE NEVER;
-- Local only. Besides the probes it runs the pod's self-fence (fence.sh): it reads the primary's
-- lease, disconnects clients, sets super_read_only and, failing that, shuts mysqld down.
GRANT REPLICATION CLIENT, PROCESS, CONNECTION_ADMIN, SYSTEM_VARIABLES_ADMIN, SHUTDOWN ON *.* TO '@PROBE_USER@'@'localhost';
GRANT SELECT ON sakila.* TO '@PROBE_USER@'@'localhost';
-- Initialisation itself leaves transactions in gtid_executed; a fresh instance must have none,
-- or replication would count them as errant.
RESET BINARY LOGS AND GTIDS;
SQL

# Initialised beside the data directory and moved into place only when complete: an
# initialisation that fails halfway (a setting mysqld refuses, a full disk) must not leave a
# directory that the next start takes for an initialised one. The next start begins afresh.
staging="${datadir}.initialising"
rm -rf "$staging"
mkdir -p "$staging"
echo "initialising data directory of instance ${ordinal}"
# The option file starts the server read-only; the accounts must be created before that applies.
if ! mysqld --defaults-file=/etc/sakila/my.cnf --initialize-insecure --datadir="$staging" \
  --super-read-only=OFF --read-only=OFF --init-file="$init_sql"; then
  rm -rf "$staging" "$init_sql"
  echo "initialising the data directory failed; see mysqld's messages above" >&2
  exit 1
fi
rm -f "$init_sql"
rm -rf "$datadir"
mv "$staging" "$datadir"
echo "data directory initialised"
