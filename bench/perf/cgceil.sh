#!/bin/bash
CEILING=${CEILING:-bench/http-ceiling/target/release/http-ceiling}
OPS=${1:-40000}
D=$(mktemp -d -t cgc.XXXX)
P=$((20000 + RANDOM % 10000))
valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file=$D/cg.out $CEILING 127.0.0.1:$P > $D/server.log 2>&1 &
SP=$!
sleep 3
${GEN:-./target/release/ringkv} bench --endpoint http://127.0.0.1:$P --target ceiling --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --ops $OPS --warmup 1ms --threads 1 --load --seed 7 > $D/bench.out 2>&1
kill -INT $SP; wait $SP
grep -E "^total" $D/bench.out
echo $D
