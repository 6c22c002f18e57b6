#!/usr/bin/env bash
# Runs every test dockgate has, installing what they need first:
# formatting and lints, Rust unit tests, then the integration suite against a
# real distribution registry with real clients (skopeo, buildah, curl, oras).
# Run as root or through sudo; without a current Rust toolchain it says how to
# get one (rustup) and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
need_root "$@"
need_cargo

bash scripts/install-deps.sh

# The debug and release builds take about 5 GiB; say so up front rather than
# failing with "No space left on device" ten minutes in.
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((6 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free under $PWD; the builds need about 5 GiB" >&2
fi

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --quiet

echo "==> cargo build --release"
cargo build --release --quiet
export DOCKGATE_BIN="$PWD/target/release/dockgate"

echo "==> integration tests"
python3 -m pytest tests/integration -q "$@"
