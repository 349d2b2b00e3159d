#!/usr/bin/env bash
# Runs the failover tests against the kind cluster: tests/cnpg_kind.rs with
# the CNPG target selected (export_chaos_env in lib.sh). Extra arguments go to
# the test binary (a test name filter, --nocapture, ...). Reports go to
# $REPORT_DIR/tests.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

export_chaos_env
export CHAOS_REPORT_DIR="$REPORT_DIR/tests"
mkdir -p "$CHAOS_REPORT_DIR"
cd "$REPO_ROOT"
log "CHAOS_TARGET=$CHAOS_TARGET CHAOS_KUBE_CONTEXT=$CHAOS_KUBE_CONTEXT CHAOS_CNPG_NAMESPACE=$CHAOS_CNPG_NAMESPACE CHAOS_CNPG_CLUSTER=$CHAOS_CNPG_CLUSTER CHAOS_ALLOW=$CHAOS_ALLOW"
cargo test --locked -p chaos-tests --features "$(cnpg_features tests)" --test cnpg_kind -- \
  --test-threads=1 "$@"
