#!/usr/bin/env bash
# Schema1 benchmark (issue 15): scan rate over 5,000 tags on two backends, and
# `dockgate schema1 convert` of an image with a 1 GiB layer side by side with
# `skopeo copy --format v2s2` of the same image, with wall time and peak RSS.
# Not run by the tests. Usage: bench/schema1.sh [LAYER_MIB=1024] [TAGS=5000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/schema1.py "${1:-1024}" "${2:-5000}"
