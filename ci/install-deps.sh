#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that the local target and the tests need:
# PostgreSQL, Patroni, etcd, HAProxy (the proxy in front of the local cluster)
# and the process/network tools. Idempotent: packages already installed are
# skipped, and nothing runs apt when all are present.
# Needs root, or sudo for a normal user. Starts no service.
set -euo pipefail

packages=(postgresql patroni etcd-server etcd-client haproxy procps iproute2 iptables util-linux mount e2fsprogs)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present (${packages[*]})"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
