# shellcheck shell=bash disable=SC2034
# Sourced by the ci/kind scripts: the pinned versions and names
# (versions.env), the paths, the environment that selects the CNPG target,
# and small helpers. Sets nothing else. (SC2034: the variables are used by
# the scripts that source this file.)

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KIND_DIR/../.." && pwd)
# shellcheck source=ci/kind/versions.env
source "$KIND_DIR/versions.env"

KUBE_CONTEXT="kind-${KIND_CLUSTER_NAME}"
MANIFESTS="$KIND_DIR/manifests"
# Reports and diagnostics, uploaded as the workflow's artifacts.
REPORT_DIR=${REPORT_DIR:-$REPO_ROOT/reports}
# kind, kubectl and helm at their pinned versions (install-tools.sh).
TOOLS_DIR=${TOOLS_DIR:-$REPO_ROOT/target/kind-tools}
export PATH="$TOOLS_DIR/bin:$PATH"

log() {
  printf '[kind %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

# retry ATTEMPTS DELAY_SECONDS COMMAND...: runs COMMAND until it succeeds.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "gave up after $n attempts: $*"
      return 1
    fi
    log "attempt $n failed, retrying in ${delay}s: $*"
    sleep "$delay"
    n=$((n + 1))
  done
}

# kubectl on the pipeline's cluster, whatever the current context is.
kc() {
  kubectl --context "$KUBE_CONTEXT" "$@"
}

# The variables that select the CNPG target for `cargo test` (target = "env")
# and `chaos run`, and allow it to act on the test namespace.
export_chaos_env() {
  export CHAOS_TARGET=cnpg
  export CHAOS_KUBE_CONTEXT="$KUBE_CONTEXT"
  export CHAOS_CNPG_NAMESPACE="$CNPG_NAMESPACE"
  export CHAOS_CNPG_CLUSTER="$CNPG_CLUSTER"
  export CHAOS_ALLOW="$KUBE_CONTEXT/$CNPG_NAMESPACE"
}

# The cargo feature flags that build a package with the CNPG target: the
# package's own `cnpg` feature when it has one, chaos-core's otherwise.
cnpg_features() {
  local manifest="$REPO_ROOT/$1/Cargo.toml"
  if grep -Eq '^cnpg[[:space:]]*=' "$manifest"; then
    echo "cnpg"
  else
    echo "chaos-core/cnpg"
  fi
}
