#!/usr/bin/env bash
# The Redis protocol next to redis-server (docs/benchmarks.md): a 1-node ringkv
# (N=1, release build, --resp) whose bucket `default` is made lww over HTTP,
# and a redis-server (no persistence) on another port, measured in turns with
# redis-benchmark: 64 clients, 100,000 requests, GET and SET, ROUNDS rounds;
# then once each with 16 commands pipelined per client.
#   apt-get install redis-tools redis-server
#   cargo build --release -p ringkv && bench/resp/compare.sh [ROUNDS]
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${RINGKV_BIN:-$here/../../target/release/ringkv}
rounds=${1:-3}
dir=$(mktemp -d /tmp/ringkv-resp.XXXXXX)
redis-server --port 16390 --save '' --appendonly no --daemonize no > "$dir/redis.log" 2>&1 &
redis=$!
$B server --node-id n1 --data-dir "$dir/n1" --listen 127.0.0.1:17081 --http 127.0.0.1:18081 \
  --initial-cluster n1=127.0.0.1:17081 --n 1 --r 1 --w 1 --insecure \
  --resp 127.0.0.1:16380 > "$dir/ringkv.log" 2>&1 &
ringkv=$!
trap 'kill $ringkv $redis 2>/dev/null; wait $ringkv $redis 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18081/health >/dev/null && break; sleep 0.1; done
curl -sf -X PUT http://127.0.0.1:18081/v1/buckets/default -d '{"conflict": "lww"}' >/dev/null
bench() { redis-benchmark "$@" -q 2>&1 | tr '\r' '\n' | grep "per second"; }
echo "load before: $(cat /proc/loadavg)"
for round in $(seq "$rounds"); do
  echo "== round $round: ringkv --resp"; bench -p 16380 -c 64 -n 100000 -t get,set
  echo "== round $round: redis-server"; bench -p 16390 -c 64 -n 100000 -t get,set
done
echo "== pipelined -P 16: ringkv --resp"; bench -p 16380 -c 64 -n 400000 -P 16 -t get,set
echo "== pipelined -P 16: redis-server"; bench -p 16390 -c 64 -n 400000 -P 16 -t get,set
echo "load after: $(cat /proc/loadavg)"
