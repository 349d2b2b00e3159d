#!/usr/bin/env bash
# Checks that Chaos Mesh can inject into the CNPG pods before any test relies
# on it: an IOChaos on a replica's WAL volume (manifests/smoke-iochaos.yaml)
# must reach AllInjected, then is deleted (Chaos Mesh recovers on delete).
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

name=chaos-ci-smoke-iochaos
kc apply -f "$MANIFESTS/smoke-iochaos.yaml"
if ! kc -n "$CNPG_NAMESPACE" wait --for=condition=AllInjected "iochaos/$name" --timeout=120s; then
  kc -n "$CNPG_NAMESPACE" describe "iochaos/$name" || true
  kc -n "$CNPG_NAMESPACE" delete "iochaos/$name" --wait --timeout=120s || true
  die "Chaos Mesh could not inject IOChaos into the CNPG pods (a read-only root filesystem makes it fail: the Cluster needs securityContext.readOnlyRootFilesystem: false)"
fi
log "IOChaos injected"
kc -n "$CNPG_NAMESPACE" delete "iochaos/$name" --wait --timeout=120s
kc -n "$CNPG_NAMESPACE" wait --for=condition=Ready "cluster/$CNPG_CLUSTER" --timeout=300s
