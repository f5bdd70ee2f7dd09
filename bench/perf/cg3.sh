#!/bin/bash
. "$(dirname "$0")/lib.sh"
# usage: cg3.sh BIN [OPS] -> callgrind instruction totals of 3 nodes (N=3 R=2 W=2) serving OPS ops of workload A
BIN=$1; OPS=${2:-15000}
G=${GEN:-./target/release/ringkv}
D=$(mktemp -d -t cg3.XXXX)
P=$((21000 + RANDOM % 8000))
WRAP="valgrind --tool=callgrind --callgrind-out-file=$D/cg.n%i" WAIT=300 start3 $BIN $D $P
sleep 5
$G bench --endpoint http://127.0.0.1:$P,http://127.0.0.1:$((P+2)),http://127.0.0.1:$((P+4)) --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --ops $OPS --warmup 1ms --threads 1 --load --bucket b --seed 7 --timeout 30s > $D/bench.out 2>&1
kill -INT $PIDS; wait $PIDS
grep -E "^total" $D/bench.out
for i in 1 2 3; do grep -E "I\s+refs" $D/n$i.log; done
echo $D
