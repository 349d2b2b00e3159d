#!/usr/bin/env bash
# Deletes the kind cluster (nothing to do when it does not exist).
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
  kind delete cluster --name "$KIND_CLUSTER_NAME"
else
  log "no kind cluster $KIND_CLUSTER_NAME"
fi
