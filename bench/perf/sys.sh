#!/bin/bash
CEILING=${CEILING:-bench/http-ceiling/target/release/http-ceiling}
# syscalls per request: env CEIL=1 for the ceiling server
D=$(mktemp -d -t sys.XXXX)
P=$((20000 + RANDOM % 10000))
if [ -n "$CEIL" ]; then
$CEILING 127.0.0.1:$P > $D/server.log 2>&1 &
SP=$!; T="--target ceiling"; sleep 0.5
else
${BIN:-${GEN:-./target/release/ringkv}} server --node-id n1 --data-dir $D/n1 --listen 127.0.0.1:$((P+1)) --http 127.0.0.1:$P --initial-cluster n1=127.0.0.1:$((P+1)) --n 1 --r 1 --w 1 > $D/server.log 2>&1 &
SP=$!; T="--bucket b"
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$P/health && break; sleep 0.2; done
fi
${GEN:-./target/release/ringkv} bench --endpoint http://127.0.0.1:$P $T --workload ${WL:-a} --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration 10s --warmup 1s --threads 1 --load > $D/bench.out 2>&1 &
BP=$!
sleep 3
perf stat -e 'syscalls:sys_enter_*' -p $SP -o $D/stat.txt -- sleep 5 > /dev/null 2>&1
wait $BP
kill $SP; wait $SP
grep -E "^total|^update|^read" $D/bench.out
awk '$1 ~ /^[0-9,]+$/ && $1 != "0" {gsub(",","",$1); print $1, $2}' $D/stat.txt | sort -rn | head -12
echo $D
