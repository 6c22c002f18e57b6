#!/usr/bin/env bash
# The dockgate benchmark, one command: bench/run.sh
# Installs what it needs (Debian packages), builds dockgate in release mode
# unless DOCKGATE_BIN names a binary, then runs bench/bench.py, which prints
# a markdown table and writes bench/out/results/<time>/ (bench/out/latest).
#   QUICK=1 bench/run.sh        ~2-minute smoke run
#   ROUNDS=3 GET_MIB=256 ...    see bench/README.md for every knob
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nginx wrk nghttp2-client curl openssl python3)
if [[ "${PROFILE:-}" == 1 ]]; then APT_PACKAGES+=(linux-perf); fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Keep the nginx package from starting its own service on port 80:
  # the bench runs its own nginx instances on loopback.
  added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  if ((added_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

if [[ -z "${DOCKGATE_BIN:-}" ]]; then
  echo "==> cargo build --release" >&2
  cargo build --release --quiet
  export DOCKGATE_BIN="$PWD/target/release/dockgate"
fi

# 1,000 idle connections plus the load generators need more than 1024 fds.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
exec python3 bench/bench.py
