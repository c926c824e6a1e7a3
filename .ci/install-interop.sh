#!/usr/bin/env bash
# Install what raftwal's interop tests need: the Go toolchain and etcd 3.4's
# Go sources (to build tools/etcdref), plus the etcd server and client
# binaries. Idempotent: does nothing if everything is already installed.
# Debian/Ubuntu only (bookworm ships etcd 3.4.23 and Go 1.19).
set -euo pipefail

packages=(golang-go golang-etcd-server-dev etcd-server etcd-client)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-interop: all of ${packages[*]} already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-interop: apt-get not found; install ${missing[*]} by hand" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-interop: not root and no sudo; cannot install ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-interop: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
