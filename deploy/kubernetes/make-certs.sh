#!/bin/sh
# Makes the cluster's CA, context secret and one certificate per pod, and the Secret
# `ringkv-certs` the StatefulSet mounts. The CA key stays in DIR (keep it safe, offline):
# it is not put in the Secret.
#
#   deploy/kubernetes/make-certs.sh [REPLICAS] [DIR]      (defaults: 3, ./ringkv-certs)
#   kubectl apply -n NAMESPACE -f DIR/secret.yaml
set -eu
replicas=${1:-3}
dir=${2:-./ringkv-certs}
ringkv=${RINGKV:-ringkv}

"$ringkv" cert init --dir "$dir"
set -- --from-file="$dir/ca.crt" --from-file="$dir/cluster.secret"
i=0
while [ "$i" -lt "$replicas" ]; do
    "$ringkv" cert issue --dir "$dir" "ringkv-$i"
    set -- "$@" --from-file="$dir/ringkv-$i.crt" --from-file="$dir/ringkv-$i.key"
    i=$((i + 1))
done
kubectl create secret generic ringkv-certs "$@" --dry-run=client -o yaml > "$dir/secret.yaml"
echo "wrote $dir/secret.yaml: kubectl apply -n NAMESPACE -f $dir/secret.yaml"
