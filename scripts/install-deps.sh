#!/usr/bin/env bash
# Installs everything dockgate's build and tests need on Debian (run as root).
# Idempotent: quick when everything is already there.
set -euo pipefail

APT_PACKAGES=(
  cmake gcc pkg-config            # pingora's zlib-ng (libz-ng-sys) builds with cmake
  binutils                        # objcopy: scripts/release.sh splits off the debug info
  docker-registry                 # the real CNCF distribution registry (backend)
  skopeo buildah podman           # real clients (Go TLS verifier)
  curl openssl apache2-utils      # curl (h2), openssl, htpasswd -B
  prometheus                      # prometheus + promtool for the metrics tests
  systemd                         # systemd-analyze for the unit checks
  dpkg-dev chromium               # scripts/package.sh (dpkg-shlibdeps); the status page test
  python3 python3-pip python3-cryptography   # hand-signed schema1 manifests (ES256)
  protobuf-compiler               # protoc: the etcd client's gRPC code is generated at build time
  etcd-server etcd-client haproxy # [cluster] tests: a real etcd cluster behind HAProxy
  nodejs                          # the SSO tests' OpenID provider (oidc-provider)
)
PIP_PACKAGES=(oras pytest requests h2 sslyze)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

py_missing=()
for p in "${PIP_PACKAGES[@]}"; do
  python3 -m pip show -q "$p" >/dev/null 2>&1 || py_missing+=("$p")
done
if ((${#py_missing[@]})); then
  echo "==> pip install ${py_missing[*]}"
  python3 -m pip install -q --root-user-action=ignore "${py_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${py_missing[@]}"
fi

# The SSO tests' real OpenID provider (npm oidc-provider), project-local, never global.
# Debian's nodejs comes without npm; other builds of nodejs bundle it (and conflict with it).
if ! command -v npm >/dev/null; then
  apt-get install -y -q --no-install-recommends npm
fi
oidc_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/integration/oidc"
if [[ ! -d "$oidc_dir/node_modules/oidc-provider" ]]; then
  echo "==> npm ci (tests/integration/oidc)"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
