#!/usr/bin/env bash
# A full anti-entropy repair pass over 1,000,000 keys on 3 local nodes, and
# the client p99 while it runs next to without it.
#
#   bench/aae/full-pass.sh [BIN]        (BIN defaults to target/release/ringkv)
#   AAE_RATE=2000 bench/aae/full-pass.sh   (--aae-keys-per-sec of the nodes)
#
# 1. Three nodes (hinted handoff off, no background sweeps) take 1,000,000
#    keys of 100 bytes.
# 2. n3 is stopped; 100,000 updates go to n1 and n2 (uniform over the keys).
# 3. n3 starts again and rebuilds its trees in the background (its rebuild
#    time is printed); a 30 s open-loop workload A at 1,000 ops/s measures
#    the p99 without repair.
# 4. The same workload runs again while `ringkv repair` runs a full pass: its
#    time, bytes and keys repaired, and the p99 beside it.
# 5. A second pass, every replica in step and every tree built: its time and
#    bytes.
# Everything runs on loopback; the nodes are stopped by PID at the end.
set -euo pipefail
BIN=${1:-target/release/ringkv}
KEYS=${KEYS:-1000000}
DIR=$(mktemp -d)
BASE=${BASE:-27100}
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
CLUSTER="n1=127.0.0.1:$((BASE+1)),n2=127.0.0.1:$((BASE+2)),n3=127.0.0.1:$((BASE+3))"
start() { # start node i
  local i=$1
  "$BIN" server --node-id "n$i" --data-dir "$DIR/n$i" --listen "127.0.0.1:$((BASE+i))" \
    --http "127.0.0.1:$((BASE+10+i))" --initial-cluster "$CLUSTER" --insecure \
    --hinted-handoff false --aae-interval-ms 0 --aae-keys-per-sec "${AAE_RATE:-10000}" \
    >>"$DIR/n$i.log" 2>&1 &
  PIDS[$i]=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((BASE+10+i))/health" >/dev/null && return 0
    sleep 0.2
  done
  echo "n$i did not start"; cat "$DIR/n$i.log"; exit 1
}
E1="http://127.0.0.1:$((BASE+11))"; E2="http://127.0.0.1:$((BASE+12))"; E3="http://127.0.0.1:$((BASE+13))"
for i in 1 2 3; do start $i; done
sleep 3
echo "== load $KEYS keys"
/usr/bin/time -f "load: %e s" "$BIN" bench --endpoint "$E1,$E2,$E3" --load --keys "$KEYS" \
  --value-bytes 100 --workload c --ops 1 --concurrency 64 >/dev/null
echo "== n3 down; 100,000 updates"
kill "${PIDS[3]}"; wait "${PIDS[3]}" 2>/dev/null || true; PIDS[3]=""
sleep 6
"$BIN" bench --endpoint "$E1,$E2" --keys "$KEYS" --value-bytes 100 --workload w \
  --ops 100000 --concurrency 64 | grep -E "ops/s|errors" || true
start 3
sleep 2
# Trees are rebuilt in the background after a start, one partition per tick:
# wait for every node's, and report n3's rebuild time (it holds all keys).
for i in 1 2 3; do
  for _ in $(seq 1 600); do
    r=$(curl -sf "http://127.0.0.1:$((BASE+10+i))/v1/repair" || true)
    case "$r" in *trees_ready_after_ms*) break ;; esac
    sleep 0.5
  done
done
curl -sf "$E3/v1/repair" | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"n3 rebuilt its {d['trees_built']} trees ({d['partitions']} partitions, $KEYS keys) {d['trees_ready_after_ms']} ms after its start\")"
workload() { # $1: where its report goes
  "$BIN" bench --endpoint "$E1,$E2,$E3" --keys "$KEYS" --value-bytes 100 --workload a \
    --rate 1000 --duration 30s --concurrency 64 >"$1" 2>&1
}
p99() { cat "$1"; }
echo "== workload A at 1,000 ops/s, no repair"
workload "$DIR/base.txt"; p99 "$DIR/base.txt"
echo "== the same workload during a full repair pass"
workload "$DIR/during.txt" & W=$!
sleep 2
START=$(date +%s.%N)
"$BIN" repair --endpoint "$E1" --json >"$DIR/pass1.json"
END=$(date +%s.%N)
wait $W
p99 "$DIR/during.txt"
python3 - "$DIR/pass1.json" "$START" "$END" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
t = float(sys.argv[3]) - float(sys.argv[2])
print(f"pass 1: {t:.1f} s, bytes sent {sum(r['bytes_sent'] for r in rows)}, keys sent {sum(r['keys_sent'] for r in rows)}, keys repaired {sum(r['keys_repaired'] for r in rows)}")
print(json.dumps(rows))
PY
START=$(date +%s.%N)
"$BIN" repair --endpoint "$E1" --json >"$DIR/pass2.json"
END=$(date +%s.%N)
python3 - "$DIR/pass2.json" "$START" "$END" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
t = float(sys.argv[3]) - float(sys.argv[2])
print(f"pass 2 (in step): {t:.1f} s, bytes sent {sum(r['bytes_sent'] for r in rows)}, keys repaired {sum(r['keys_repaired'] for r in rows)}")
PY
