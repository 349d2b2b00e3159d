#!/usr/bin/env bash
# Installs the pinned CloudNativePG operator (its release manifest) and Chaos
# Mesh (its Helm chart, with the containerd runtime of kind's nodes), and
# waits until both answer.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

log "installing CloudNativePG $CNPG_VERSION"
retry 5 10 kc apply --server-side --force-conflicts -f "$CNPG_MANIFEST_URL"
kc -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=300s

log "installing Chaos Mesh $CHAOS_MESH_VERSION"
helm repo add chaos-mesh "$CHAOS_MESH_CHART_REPO" --force-update
helm upgrade --install chaos-mesh chaos-mesh/chaos-mesh \
  --kube-context "$KUBE_CONTEXT" \
  --version "$CHAOS_MESH_VERSION" \
  --namespace chaos-mesh --create-namespace \
  --set chaosDaemon.runtime=containerd \
  --set chaosDaemon.socketPath=/run/containerd/containerd.sock \
  --set controllerManager.replicaCount=1 \
  --set dashboard.create=false \
  --wait --timeout 10m
kc -n chaos-mesh rollout status deployment/chaos-controller-manager --timeout=300s
kc -n chaos-mesh rollout status daemonset/chaos-daemon --timeout=300s
