#!/usr/bin/env bash
# Two ringkv binaries in turns on the RESP port, pipelined (docs/benchmarks.md,
# "The Redis protocol next to redis-server"): each run starts a fresh 1-node
# ringkv (N=1, lww bucket `default`) from binary A or B, measures, stops it.
#   bench/resp/ab.sh BIN_A BIN_B [ROUNDS]
set -u
a=$1; b=$2; rounds=${3:-3}
dir=$(mktemp -d /tmp/ringkv-resp-ab.XXXXXX)
trap 'rm -rf "$dir"' EXIT
run() {
  local bin=$1 name=$2
  rm -rf "$dir/n1"
  $bin server --node-id n1 --data-dir "$dir/n1" --listen 127.0.0.1:17085 --http 127.0.0.1:18085 \
    --initial-cluster n1=127.0.0.1:17085 --n 1 --r 1 --w 1 --insecure \
    --resp 127.0.0.1:16385 > "$dir/ringkv.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18085/health >/dev/null && break; sleep 0.1; done
  curl -sf -X PUT http://127.0.0.1:18085/v1/buckets/default -d '{"conflict": "lww"}' >/dev/null
  echo "== $name (load $(cut -d' ' -f1 /proc/loadavg))"
  redis-benchmark -p 16385 -c 64 -n 400000 -P 16 -r 100000 -t set,get -q 2>&1 | tr '\r' '\n' \
    | grep "per second" | sed 's/^/  -r 100000: /'
  redis-benchmark -p 16385 -c 64 -n 400000 -P 16 -t get -q 2>&1 | tr '\r' '\n' \
    | grep "per second" | sed 's/^/  one key:   /'
  kill "$pid"; wait "$pid" 2>/dev/null
}
for round in $(seq "$rounds"); do
  echo "round $round"
  run "$a" A
  run "$b" B
done
