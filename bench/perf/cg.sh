#!/bin/bash
# usage: cg.sh BIN [OPS]  -> callgrind (with cache simulation) of a 1-node server
# serving OPS operations of workload A, uniform over 1000 keys, 64 clients
BIN=$1; OPS=${2:-60000}
D=$(mktemp -d -t cg.XXXX)
P=$((20000 + RANDOM % 10000))
valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file=$D/cg.out $BIN server --node-id n1 --data-dir $D/n1 --listen 127.0.0.1:$((P+1)) --http 127.0.0.1:$P --initial-cluster n1=127.0.0.1:$((P+1)) --n 1 --r 1 --w 1 > $D/server.log 2>&1 &
SP=$!
for i in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:$P/health && break; sleep 0.2; done
${GEN:-./target/release/ringkv} bench --endpoint http://127.0.0.1:$P --workload a --dist uniform --keys 1000 --value-bytes 100 --concurrency 64 --ops $OPS --warmup 1ms --threads 1 --load --bucket b --seed 7 > $D/bench.out 2>&1
kill -INT $SP; wait $SP
grep -E "^total" $D/bench.out
echo $D
