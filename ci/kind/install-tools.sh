#!/usr/bin/env bash
# Installs kind, kubectl and helm at the versions pinned in versions.env into
# $TOOLS_DIR/bin (default target/kind-tools/bin), each checked against the
# checksum its release publishes. Idempotent: a tool already at its version
# is kept. On GitHub Actions the directory is added to the PATH of later steps.
set -euo pipefail
# shellcheck source=ci/kind/lib.sh
source "$(dirname "$0")/lib.sh"

case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac
bin="$TOOLS_DIR/bin"
mkdir -p "$bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() {
  curl -fsSL --retry 5 --retry-delay 2 -o "$2" "$1"
}

# check FILE SHA256: fails unless FILE has that digest.
check() {
  echo "$2  $1" | sha256sum --check --quiet - || die "checksum mismatch for $1"
}

if [[ "$("$bin/kind" version 2>/dev/null || true)" == "kind $KIND_VERSION "* ]]; then
  log "kind $KIND_VERSION present"
else
  log "installing kind $KIND_VERSION"
  url="https://github.com/kubernetes-sigs/kind/releases/download/$KIND_VERSION/kind-linux-$arch"
  fetch "$url" "$tmp/kind"
  fetch "$url.sha256sum" "$tmp/kind.sha256sum"
  check "$tmp/kind" "$(cut -d' ' -f1 "$tmp/kind.sha256sum")"
  install -m 0755 "$tmp/kind" "$bin/kind"
fi

installed=$("$bin/kubectl" version --client 2>/dev/null || true)
if [[ "${installed%%$'\n'*}" == "Client Version: $KUBECTL_VERSION" ]]; then
  log "kubectl $KUBECTL_VERSION present"
else
  log "installing kubectl $KUBECTL_VERSION"
  url="https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/$arch/kubectl"
  fetch "$url" "$tmp/kubectl"
  fetch "$url.sha256" "$tmp/kubectl.sha256"
  check "$tmp/kubectl" "$(cut -d' ' -f1 "$tmp/kubectl.sha256")"
  install -m 0755 "$tmp/kubectl" "$bin/kubectl"
fi

if [[ "$("$bin/helm" version --short 2>/dev/null || true)" == "$HELM_VERSION+"* ]]; then
  log "helm $HELM_VERSION present"
else
  log "installing helm $HELM_VERSION"
  url="https://get.helm.sh/helm-$HELM_VERSION-linux-$arch.tar.gz"
  fetch "$url" "$tmp/helm.tar.gz"
  fetch "$url.sha256sum" "$tmp/helm.sha256sum"
  check "$tmp/helm.tar.gz" "$(cut -d' ' -f1 "$tmp/helm.sha256sum")"
  tar -xzf "$tmp/helm.tar.gz" -C "$tmp"
  install -m 0755 "$tmp/linux-$arch/helm" "$bin/helm"
fi

if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "$bin" >>"$GITHUB_PATH"
fi
kind version
kubectl version --client
helm version --short
