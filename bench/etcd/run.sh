#!/usr/bin/env bash
# Starts a 3-member etcd 3.4 cluster on loopback (fsync on, as shipped),
# loads 1,000 keys, and runs wrk against its JSON gateway: PUT, then
# linearizable range, 64 connections, 2 threads. Prints wrk's summaries.
# Usage: bench/etcd/run.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
dur=${1:-10}
conns=${2:-64}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/ringkv-etcd.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$dir/e$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --initial-cluster "$cluster" --initial-cluster-state new --log-level error \
    >"$dir/e$i.log" 2>&1 &
  pids+=($!)
done
endpoint=http://127.0.0.1:23791
for _ in $(seq 1 100); do
  curl -sf "$endpoint/health" | grep -q true && break
  sleep 0.2
done
# Load the keys once (the range benchmark reads existing keys).
wrk -t2 -c"$conns" -d3s -s "$here/kv.lua" "$endpoint" -- put >/dev/null
echo "== etcd PUT, $conns connections, ${dur}s"
wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$here/kv.lua" "$endpoint" -- put
echo "== etcd linearizable range, $conns connections, ${dur}s"
wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$here/kv.lua" "$endpoint" -- range
