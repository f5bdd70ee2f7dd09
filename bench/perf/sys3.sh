#!/bin/bash
. "$(dirname "$0")/lib.sh"
# syscalls per request on a 3-node cluster under workload A: sys3.sh BIN
BIN=$1
G=${GEN:-./target/release/ringkv}
D=$(mktemp -d -t sys3.XXXX)
P=$((21000 + RANDOM % 8000))
start3 $BIN $D $P
sleep 1
$G bench --endpoint http://127.0.0.1:$P,http://127.0.0.1:$((P+2)),http://127.0.0.1:$((P+4)) --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration 10s --warmup 1s --threads 1 --load --bucket b > $D/bench.out 2>&1 &
BP=$!
sleep 3
perf stat -e 'syscalls:sys_enter_*' -p $(echo $PIDS | tr ' ' ',') -o $D/stat.txt -- sleep 5 > /dev/null 2>&1
wait $BP
kill $PIDS; wait $PIDS 2>/dev/null
grep -E "^total" $D/bench.out
awk '$1 ~ /^[0-9,]+$/ && $1 != "0" {gsub(",","",$1); print $1, $2}' $D/stat.txt | sort -rn | head -10
