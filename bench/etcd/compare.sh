#!/usr/bin/env bash
# One round of the strong-bucket comparison (docs/benchmarks.md, "Strong
# buckets next to etcd"): a 3-node ringkv cluster (ringkv dev, release
# build) with a strong and an eventual bucket, then a 3-member etcd 3.4
# (bench/etcd/run.sh); 64 clients, 1,000 keys, 100-byte values, 10 s each.
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${RINGKV_BIN:-$here/../../target/release/ringkv}
dir=$(mktemp -d /tmp/ringkv-cmp.XXXXXX)
trap 'rm -rf "$dir"' EXIT
$B dev --nodes 3 --dir "$dir/cluster" --http-port 18080 --rpc-port 17080 > "$dir/dev.log" 2>&1 &
dev=$!
sleep 5
E=http://127.0.0.1:18080,http://127.0.0.1:18081,http://127.0.0.1:18082
curl -s -X PUT -d '{"consistency":"strong"}' http://127.0.0.1:18080/v1/buckets/sb >/dev/null
sleep 1
common="--endpoint $E --concurrency 64 --keys 1000 --value-bytes 100"
$B bench $common --bucket sb --workload w --duration 5s --load >/dev/null 2>&1
echo "== ringkv strong PUT"; $B bench $common --bucket sb --workload w --duration 10s 2>&1 | grep -E "^update|^op"
echo "== ringkv strong GET"; $B bench $common --bucket sb --workload c --duration 10s 2>&1 | grep -E "^read|^op"
$B bench $common --bucket default --workload w --duration 5s --load >/dev/null 2>&1
echo "== ringkv eventual PUT"; $B bench $common --bucket default --workload w --duration 10s 2>&1 | grep -E "^update|^op"
echo "== ringkv eventual GET"; $B bench $common --bucket default --workload c --duration 10s 2>&1 | grep -E "^read|^op"
kill -INT $dev; wait $dev
"$here/run.sh" 10 64 2>&1 | grep -E "==|Requests/sec|50%|99%|Non-2xx"
