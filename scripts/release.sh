#!/usr/bin/env bash
# The binary to ship, small, with its debug info kept beside it for profiling.
#
#   scripts/release.sh            build (cargo build --release), then split
#   scripts/release.sh BINARY     split an existing binary
#
# Writes to target/dist/ (or $DIST_DIR):
#   dockgate         debug info removed, symbol table kept (perf and gdb still name functions)
#   dockgate.debug   the debug info (line tables), found through the binary's .gnu_debuglink
#                    when it sits next to it or in /usr/lib/debug/.build-id/
# cargo's own target/release/dockgate keeps everything, for `perf record` during development.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release
  bin=target/release/dockgate
fi
dist=${DIST_DIR:-target/dist}
mkdir -p "$dist"
objcopy --only-keep-debug "$bin" "$dist/dockgate.debug"
chmod 0644 "$dist/dockgate.debug"
objcopy --strip-debug --add-gnu-debuglink="$dist/dockgate.debug" "$bin" "$dist/dockgate.tmp"
mv "$dist/dockgate.tmp" "$dist/dockgate"
ls -l "$bin" "$dist/dockgate" "$dist/dockgate.debug" | awk '{printf "%12d  %s\n", $5, $9}'
