#!/bin/bash
# usage: ab.sh ROUNDS BIN... ; env DUR=8 WL=a DIST=uniform
# prints ops/s, p99 and the server's CPU time per operation (µs), measured
# over a window inside the measured part of the run.
R=$1; shift
DUR=${DUR:-8}; WL=${WL:-a}; DIST=${DIST:-uniform}
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq $R); do
  for BIN in "$@"; do
    D=$(mktemp -d -t ab.XXXX)
    P=$((20000 + RANDOM % 10000))
    $BIN server --node-id n1 --data-dir $D/n1 --listen 127.0.0.1:$((P+1)) --http 127.0.0.1:$P --initial-cluster n1=127.0.0.1:$((P+1)) --n 1 --r 1 --w 1 $EXTRA > $D/server.log 2>&1 &
    SP=$!
    for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$P/health && break; sleep 0.2; done
    ${GEN:-./target/release/ringkv} bench --endpoint http://127.0.0.1:$P --workload $WL --dist $DIST --keys ${KEYS:-1000} --value-bytes 100 --concurrency 64 --duration ${DUR}s --warmup 1s --threads 1 --load --bucket b > $D/bench.out 2>&1 &
    BP=$!
    sleep 2; c0=$(cpu $SP); t0=$(date +%s.%N)
    sleep $((DUR-2)); c1=$(cpu $SP); t1=$(date +%s.%N)
    wait $BP
    kill $SP; wait $SP 2>/dev/null
    read ops p99 <<<"$(grep -E '^total' $D/bench.out | awk '{print $4, $7}')"
    [ -n "$ops" ] && us=$(python3 -c "print(round(($c1-$c0)/100/($t1-$t0)/$ops*1e6,2))")
    echo "round $r $(basename $BIN): $ops ops/s p99 $p99 server CPU/op ${us} us"
    if [ -z "$ops" ]; then echo "kept $D"; else rm -rf $D; fi
  done
done
