#!/usr/bin/env bash
# Runs `chaos run` and `chaos experiment` against the kind cluster, as a user
# would from a shell:
# the primary killed with writes through the -rw service, then again with
# writes through the PgBouncer pooler; then a lease-duration experiment (3 runs
# per arm) whose Cluster spec must be restored. Reports go to $REPORT_DIR/cli.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
cargo build --locked -p chaos-cli --features "$(cnpg_features chaos-cli)"
chaos="$REPO_ROOT/target/debug/chaos"
mkdir -p "$REPORT_DIR/cli"
# Only the opt-in label on the namespace allows acting on it here.
unset CHAOS_ALLOW

target=(--target cnpg --context "$KUBE_CONTEXT" --namespace "$CNPG_NAMESPACE" --cluster "$CNPG_CLUSTER")
common=(--max-rto 60s --rpo 0 --report-dir "$REPORT_DIR/cli")

log "chaos run: kill-primary, writes through the -rw service"
"$chaos" run "${target[@]}" --fault kill-primary --name cnpg-kill-primary "${common[@]}"
kc -n "$CNPG_NAMESPACE" wait --for=condition=Ready "cluster/$CNPG_CLUSTER" --timeout=600s

log "chaos run: kill-primary, writes through pooler $CNPG_POOLER"
"$chaos" run "${target[@]}" --pooler "$CNPG_POOLER" --fault kill-primary --name cnpg-kill-primary-pooler "${common[@]}"
kc -n "$CNPG_NAMESPACE" wait --for=condition=Ready "cluster/$CNPG_CLUSTER" --timeout=600s

# The seed team's loop: one Cluster setting against the baseline, interleaved
# runs, the spec restored afterwards (checked below).
log "chaos experiment: spec.primaryLease.leaseDurationSeconds=5, 3 runs per arm"
before=$(kc -n "$CNPG_NAMESPACE" get "cluster/$CNPG_CLUSTER" -o jsonpath='{.spec.primaryLease}')
"$chaos" experiment "${target[@]}" --set spec.primaryLease.leaseDurationSeconds=5 --repeat 3 \
  --fault kill-primary --name cnpg-lease-experiment "${common[@]}"
after=$(kc -n "$CNPG_NAMESPACE" get "cluster/$CNPG_CLUSTER" -o jsonpath='{.spec.primaryLease}')
if [[ "$before" != "$after" ]]; then
  echo "the experiment did not restore spec.primaryLease: before '$before', after '$after'" >&2
  exit 1
fi
if kc -n "$CNPG_NAMESPACE" get "cluster/$CNPG_CLUSTER" -o jsonpath='{.metadata.annotations}' | grep -q 'chaos.dev/restore-'; then
  echo "the experiment left its restore record on the Cluster" >&2
  exit 1
fi
