#!/usr/bin/env bash
# The whole kind pipeline in one command, as .github/workflows/kind.yml runs
# it step by step: tools, cluster, operators, CNPG cluster and pooler, Chaos
# Mesh smoke test, the failover tests, `chaos run`. Diagnostics are collected
# on failure; the kind cluster is deleted at the end unless KEEP_CLUSTER=1.
# Needs Docker (or another engine kind supports) and a Rust toolchain.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

finish() {
  local status=$?
  if ((status != 0)); then
    "$KIND_DIR/collect-diagnostics.sh" || true
  fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    "$KIND_DIR/delete-cluster.sh" || true
  fi
  log "reports in $REPORT_DIR (exit $status)"
}
trap finish EXIT

"$KIND_DIR/install-tools.sh"
"$KIND_DIR/build.sh"
"$KIND_DIR/create-cluster.sh"
"$KIND_DIR/install-operators.sh"
"$KIND_DIR/deploy-cluster.sh"
"$KIND_DIR/smoke-chaos.sh"
"$KIND_DIR/run-tests.sh"
"$KIND_DIR/run-cli.sh"
