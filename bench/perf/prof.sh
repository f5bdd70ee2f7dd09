#!/bin/bash
# usage: prof.sh BIN  (env DUR=10) -> perf record of a 1-node server under workload A
BIN=${1:-./target/release/ringkv}
DUR=${DUR:-10}
D=$(mktemp -d -t prof.XXXX)
P=$((20000 + RANDOM % 10000))
$BIN server --node-id n1 --data-dir $D/n1 --listen 127.0.0.1:$((P+1)) --http 127.0.0.1:$P --initial-cluster n1=127.0.0.1:$((P+1)) --n 1 --r 1 --w 1 > $D/server.log 2>&1 &
SP=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$P/health && break; sleep 0.2; done
${GEN:-./target/release/ringkv} bench --endpoint http://127.0.0.1:$P --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration $((DUR+4))s --warmup 1s --threads 1 --load --bucket b > $D/bench.out 2>&1 &
BP=$!
sleep 3
perf record -F 2999 ${PERFARGS:--g} -p $SP -o $D/perf.data -- sleep $DUR > /dev/null 2>&1
wait $BP
kill $SP; wait $SP
grep -E "^total|ops/s" $D/bench.out | head -3
echo $D
