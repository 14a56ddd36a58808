# Sourced by .ci/run. A streaming read replica (hot standby) of the test
# PostgreSQL at $APIWALLET_TEST_DATABASE_URL, for the tests of
# DATABASE_READ_URL. Uses free_port, $PGBIN, $work and pids from .ci/run.
#
# The primary needs nothing more than initdb's defaults: wal_level=replica,
# max_wal_senders=10, and (with --auth=trust) replication connections
# from 127.0.0.1.

pg_primary_hostport=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p.hostname, p.port or 5432)' "$APIWALLET_TEST_DATABASE_URL")
read -r pg_primary_host pg_primary_port <<<"$pg_primary_hostport"
pg_replica_port=$(free_port)
pg_replica_dir="$work/pg-replica"
mkdir -p "$pg_replica_dir" && chown postgres "$pg_replica_dir" && chmod 700 "$pg_replica_dir"
# -R writes standby.signal and primary_conninfo; -X stream copies the WAL
# made during the copy; -c fast starts at once rather than at a checkpoint.
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$pg_primary_host" -p "$pg_primary_port" -U postgres \
  -D "$pg_replica_dir" -R -X stream -c fast
# A hot standby refuses to start with fewer connections, workers or locks
# than its primary; the primary may have been started with them on its
# command line, which the copy does not carry.
pg_replica_opts="-c listen_addresses=127.0.0.1 -c port=$pg_replica_port -c unix_socket_directories=$pg_replica_dir -c hot_standby=on"
for s in max_connections max_worker_processes max_wal_senders max_prepared_transactions max_locks_per_transaction; do
  pg_replica_opts+=" -c $s=$("$PGBIN/psql" -h "$pg_primary_host" -p "$pg_primary_port" -U postgres -Atc "SHOW $s" postgres)"
done
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_replica_dir" -w -l "$pg_replica_dir/server.log" -o "$pg_replica_opts" start >/dev/null
pids+=("$(head -1 "$pg_replica_dir/postmaster.pid")")
if [ "$("$PGBIN/psql" -h 127.0.0.1 -p "$pg_replica_port" -U postgres -Atc 'SELECT pg_is_in_recovery()' postgres)" != t ]; then
  echo "ci: the postgresql replica on 127.0.0.1:$pg_replica_port is not in recovery" >&2
  return 1
fi
export APIWALLET_TEST_DATABASE_READ_URL="postgres://postgres@127.0.0.1:$pg_replica_port/postgres?sslmode=disable"
# The primary it follows, for tests that must write where it reads.
export APIWALLET_TEST_DATABASE_REPLICA_OF="$APIWALLET_TEST_DATABASE_URL"
echo "ci: postgresql streaming replica of $pg_primary_host:$pg_primary_port on 127.0.0.1:$pg_replica_port"
