# Shared by the 3-node scripts: source it, then `start3 BIN DIR PORT`.
# Starts n1..n3 (N=3, R=2, W=2), HTTP on PORT, PORT+2, PORT+4 and peers on the odd ports
# between, logs in DIR, and waits until all three answer /health. Sets PIDS. With
# WRAP set, each node runs under it; `%i` in WRAP becomes the node's number.
start3() {
  local bin=$1 dir=$2 p=$3 i wrap
  local ic="n1=127.0.0.1:$((p+1)),n2=127.0.0.1:$((p+3)),n3=127.0.0.1:$((p+5))"
  PIDS=""
  for i in 1 2 3; do
    wrap=${WRAP//%i/$i}
    $wrap $bin server --node-id n$i --data-dir $dir/n$i --listen 127.0.0.1:$((p+2*i-1)) \
      --http 127.0.0.1:$((p+2*i-2)) --initial-cluster $ic --n 3 --r 2 --w 2 > $dir/n$i.log 2>&1 &
    PIDS="$PIDS $!"
  done
  for i in $(seq ${WAIT:-50}); do
    curl -s -o /dev/null http://127.0.0.1:$p/health \
      && curl -s -o /dev/null http://127.0.0.1:$((p+2))/health \
      && curl -s -o /dev/null http://127.0.0.1:$((p+4))/health && break
    sleep 0.2
  done
}
