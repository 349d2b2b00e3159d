#!/usr/bin/env bash
# Creates the kind cluster (kind-config.yaml, the pinned node image), or keeps
# it when it exists. Its kubeconfig context is kind-$KIND_CLUSTER_NAME.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
  log "kind cluster $KIND_CLUSTER_NAME exists; keeping it"
else
  log "creating kind cluster $KIND_CLUSTER_NAME ($KIND_NODE_IMAGE)"
  kind create cluster --name "$KIND_CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
    --config "$KIND_DIR/kind-config.yaml" --wait 180s
fi
kc cluster-info
kc wait --for=condition=Ready nodes --all --timeout=180s
kc get nodes -o wide
