#!/bin/bash
. "$(dirname "$0")/lib.sh"
CEILING=${CEILING:-bench/http-ceiling/target/release/http-ceiling}
# usage: ab3.sh ROUNDS BIN... ; 3-node cluster N=3 R=2 W=2, workload A uniform; each run preceded
# by the ceiling's W and C (5 s each) so each figure has its own reference.
R=$1; shift
DUR=${DUR:-8}
G=${GEN:-./target/release/ringkv}
CP=$((20000 + RANDOM % 1000))
$CEILING 127.0.0.1:$CP > /dev/null 2>&1 &
CEIL=$!
sleep 0.5
for r in $(seq $R); do
  for BIN in "$@"; do
    w=$($G bench --endpoint http://127.0.0.1:$CP --target ceiling --workload w --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration 5s --warmup 1s --threads 2 --load 2>&1 | awk '/^total|^update/ {print $4; exit}')
    c=$($G bench --endpoint http://127.0.0.1:$CP --target ceiling --workload c --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration 5s --warmup 1s --threads 2 --load 2>&1 | awk '/^total|^read/ {print $4; exit}')
    D=$(mktemp -d -t ab3.XXXX)
    P=$((21000 + RANDOM % 8000))
    start3 $BIN $D $P
    sleep 1
    $G bench --endpoint http://127.0.0.1:$P,http://127.0.0.1:$((P+2)),http://127.0.0.1:$((P+4)) --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --duration ${DUR}s --warmup 1s --threads 1 --load --bucket b > $D/bench.out 2>&1
    kill $PIDS; wait $PIDS 2>/dev/null
    read ops p99 <<<"$(grep -E '^total' $D/bench.out | awk '{print $4, $7}')"
    echo "round $r $(basename $BIN): $ops ops/s p99 $p99 ceiling W $w C $c ratio $(python3 -c "print(round(100*$ops/(($w+$c)/2),1))") %"
    rm -rf $D
  done
done
kill $CEIL
