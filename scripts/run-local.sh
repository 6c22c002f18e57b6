#!/usr/bin/env bash
# Quick start on a fresh Debian machine (as root, or through sudo): checks for a
# current Rust toolchain (and says how to get one), installs the rest, builds
# dockgate, makes sure a distribution registry answers on 127.0.0.1:5000
# (starting the docker-registry package if none does), then serves
# conf/dockgate.toml on https://127.0.0.1:5443 and https://[::1]:5443
# (path method: /v2/docker-local/<image>). dockgate prints, at start, the
# directory holding the CA for each client (certs/clients/<host:port>/ca.crt).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
need_root "$@"
need_cargo

need=()
for p in cmake gcc pkg-config ca-certificates docker-registry curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

cargo build --release

if ! curl -sf -o /dev/null http://127.0.0.1:5000/v2/; then
  state=/var/lib/dockgate-quickstart
  mkdir -p "$state/registry"
  cat > "$state/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
YML
  echo "==> starting a local registry on 127.0.0.1:5000 (data in $state/registry, log in $state/registry.log)"
  nohup /usr/bin/docker-registry serve "$state/registry.yml" > "$state/registry.log" 2>&1 &
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.2; done
  curl -sf -o /dev/null http://127.0.0.1:5000/v2/ || { echo "the registry did not come up; see $state/registry.log" >&2; exit 1; }
fi

./target/release/dockgate check --config conf/dockgate.toml
echo "==> dockgate on https://127.0.0.1:5443 and https://[::1]:5443 (path method: <host>:5443/docker-local/<image>)"
exec ./target/release/dockgate serve --config conf/dockgate.toml
