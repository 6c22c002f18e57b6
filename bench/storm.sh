#!/usr/bin/env bash
# Pull-storm bench (issue 16): dockgate's edge cache vs nginx plain and nginx proxy_cache.
#   bench/storm.sh                      100 clients x 256 MiB blob + manifest, cold and warm
#   CLIENTS=20 STORM_MIB=64 bench/storm.sh   a smaller run
set -euo pipefail
cd "$(dirname "$0")/.."
for p in nginx nghttp2-client openssl python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    echo "bench/storm.sh: needs Debian package $p (bench/run.sh installs it)" >&2; exit 1; }
done
if [[ -z "${DOCKGATE_BIN:-}" ]]; then
  cargo build --release --quiet
  export DOCKGATE_BIN="$PWD/target/release/dockgate"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
exec python3 bench/storm.py
