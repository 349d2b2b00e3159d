#!/usr/bin/env bash
# Creates the opted-in namespace, the 3-instance CNPG Cluster and its Pooler
# (ci/kind/manifests/), and waits until the cluster is healthy with a
# synchronous standby and the pooler is rolled out.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

kc apply -f "$MANIFESTS/namespace.yaml"
# The operator's admission webhook may not answer for a few seconds after its
# deployment is available.
retry 30 5 kc apply -f "$MANIFESTS/cluster.yaml"
retry 30 5 kc apply -f "$MANIFESTS/pooler.yaml"

log "waiting for cluster $CNPG_CLUSTER"
kc -n "$CNPG_NAMESPACE" wait --for=condition=Ready "cluster/$CNPG_CLUSTER" --timeout=900s
ready=$(kc -n "$CNPG_NAMESPACE" get "cluster/$CNPG_CLUSTER" -o jsonpath='{.status.readyInstances}')
[[ "$ready" == 3 ]] || die "cluster $CNPG_CLUSTER has $ready ready instances, not 3"
primary=$(kc -n "$CNPG_NAMESPACE" get "cluster/$CNPG_CLUSTER" -o jsonpath='{.status.currentPrimary}')
log "cluster $CNPG_CLUSTER healthy, primary $primary"

# dataDurability: required with method any and number 1: one standby in the
# quorum (sync_state "quorum") before any test measures RPO.
standbys() {
  local n
  n=$(kc -n "$CNPG_NAMESPACE" exec "$primary" -c postgres -- \
    psql -XtAc "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")
  log "synchronous standbys on $primary: $n"
  ((n >= 1))
}
retry 30 5 standbys
kc -n "$CNPG_NAMESPACE" exec "$primary" -c postgres -- psql -XtAc 'SHOW synchronous_standby_names'

log "waiting for pooler $CNPG_POOLER"
retry 30 5 kc -n "$CNPG_NAMESPACE" get "deployment/$CNPG_POOLER" >/dev/null
kc -n "$CNPG_NAMESPACE" rollout status "deployment/$CNPG_POOLER" --timeout=300s
kc -n "$CNPG_NAMESPACE" get cluster,pooler,pods,pvc,svc -o wide
