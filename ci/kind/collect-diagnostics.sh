#!/usr/bin/env bash
# Collects what explains a failed run into DIR (default
# $REPORT_DIR/diagnostics): objects, events, descriptions, the logs of the
# operators and of every pod in the test namespace, and kind's node logs.
# Best effort: a command that fails is noted and the rest still runs.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

out=${1:-$REPORT_DIR/diagnostics}
mkdir -p "$out"
log "collecting diagnostics into $out"

# save FILE COMMAND...: COMMAND's output (and errors) into $out/FILE.
save() {
  local file="$out/$1"
  shift
  if ! "$@" >"$file" 2>&1; then
    echo "(command failed: $*)" >>"$file"
  fi
}

ns=$CNPG_NAMESPACE
save nodes.txt kc get nodes -o wide
save all.txt kc get all,pvc,pv -A -o wide
save events.txt kc get events -A --sort-by=.lastTimestamp
save cnpg-objects.yaml kc get clusters.postgresql.cnpg.io,poolers.postgresql.cnpg.io,failoverquorums.postgresql.cnpg.io -A -o yaml
save chaos-objects.yaml kc get podchaos,networkchaos,iochaos,stresschaos -A -o yaml
save describe-cluster.txt kc -n "$ns" describe "cluster/$CNPG_CLUSTER"
save describe-pooler.txt kc -n "$ns" describe "pooler/$CNPG_POOLER"
save describe-pods.txt kc -n "$ns" describe pods
save namespace.yaml kc get namespace "$ns" -o yaml
save cnpg-operator.log kc -n cnpg-system logs deployment/cnpg-controller-manager --all-containers --timestamps
save chaos-controller.log kc -n chaos-mesh logs deployment/chaos-controller-manager --all-containers --timestamps
for pod in $(kc -n chaos-mesh get pods -l app.kubernetes.io/component=chaos-daemon -o name 2>/dev/null); do
  save "chaos-daemon-${pod#pod/}.log" kc -n chaos-mesh logs "$pod" --all-containers --timestamps
done
for pod in $(kc -n "$ns" get pods -o name 2>/dev/null); do
  name=${pod#pod/}
  save "pod-$name.log" kc -n "$ns" logs "$pod" --all-containers --timestamps
  save "pod-$name.previous.log" kc -n "$ns" logs "$pod" --all-containers --timestamps --previous
done
save kind-export.txt kind export logs "$out/kind-logs" --name "$KIND_CLUSTER_NAME"
ls -l "$out"
