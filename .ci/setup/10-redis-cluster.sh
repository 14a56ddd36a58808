# Sourced by .ci/run. A Redis Cluster of three masters (no replicas) and a
# Sentinel watching one master, all on loopback and in memory, for the
# tests that run the limiter, the quota counter and cache invalidation on
# them (REDIS_URL's redis+cluster:// and redis+sentinel:// forms).
# Uses free_port, $work and pids from .ci/run.

redis_cluster_dir="$work/redis-cluster"
mkdir -p "$redis_cluster_dir"

# wait_redis PORT: returns once redis-server on PORT answers PING.
wait_redis() {
  local _
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "ci: redis on port $1 did not start" >&2
  return 1
}

redis_cluster_addrs=()
for _ in 1 2 3; do
  p=$(free_port)
  # The cluster bus gets a free port of its own: the default, port+10000,
  # may be taken or past 65535.
  bus=$(free_port)
  mkdir -p "$redis_cluster_dir/$p"
  (cd "$redis_cluster_dir/$p" && exec redis-server --bind 127.0.0.1 --port "$p" --cluster-port "$bus" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --save '' --appendonly no --daemonize no >redis.log 2>&1) &
  pids+=($!)
  redis_cluster_addrs+=("127.0.0.1:$p")
done
for a in "${redis_cluster_addrs[@]}"; do wait_redis "${a##*:}"; done
redis-cli --cluster create "${redis_cluster_addrs[@]}" --cluster-replicas 0 --cluster-yes >"$redis_cluster_dir/create.log" 2>&1 || {
  cat "$redis_cluster_dir/create.log" >&2; return 1; }
for _ in $(seq 100); do
  ok=1
  for a in "${redis_cluster_addrs[@]}"; do
    redis-cli -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=
  done
  [ -n "$ok" ] && break
  sleep 0.1
done
[ -n "$ok" ] || { echo "ci: the redis cluster did not reach cluster_state:ok" >&2; return 1; }
export APIWALLET_TEST_REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${redis_cluster_addrs[*]}")"
echo "ci: redis cluster of 3 masters on ${redis_cluster_addrs[*]}"

# Sentinel: one master and one sentinel (quorum 1) naming it "apiwallet".
redis_master_port=$(free_port)
redis_sentinel_port=$(free_port)
mkdir -p "$redis_cluster_dir/sentinel"
redis-server --bind 127.0.0.1 --port "$redis_master_port" --save '' --appendonly no --daemonize no \
  >"$redis_cluster_dir/sentinel/master.log" 2>&1 &
pids+=($!)
wait_redis "$redis_master_port"
# A sentinel rewrites its configuration file, so it gets one of its own.
cat >"$redis_cluster_dir/sentinel/sentinel.conf" <<CONF
bind 127.0.0.1
port $redis_sentinel_port
dir $redis_cluster_dir/sentinel
sentinel monitor apiwallet 127.0.0.1 $redis_master_port 1
sentinel down-after-milliseconds apiwallet 5000
CONF
redis-server "$redis_cluster_dir/sentinel/sentinel.conf" --sentinel >"$redis_cluster_dir/sentinel/sentinel.log" 2>&1 &
pids+=($!)
wait_redis "$redis_sentinel_port"
for _ in $(seq 100); do
  redis-cli -p "$redis_sentinel_port" sentinel get-master-addr-by-name apiwallet 2>/dev/null | grep -q "$redis_master_port" && break
  sleep 0.1
done
export APIWALLET_TEST_REDIS_SENTINEL_URL="redis+sentinel://127.0.0.1:$redis_sentinel_port/apiwallet/0"
echo "ci: redis sentinel on 127.0.0.1:$redis_sentinel_port watching master apiwallet on 127.0.0.1:$redis_master_port"
