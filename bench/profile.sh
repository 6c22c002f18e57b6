#!/usr/bin/env bash
# Profiles dockgate under the bench's loads with `perf record -e cpu-clock`
# (a timer sampler: works in VMs without hardware counters), one measure at a
# time, against dockgate only. Writes bench/out/profile/<measure>.data plus
# <measure>.self.txt (time by function) and <measure>.inclusive.txt (time
# including callees). Explore further with
#   perf report -i bench/out/profile/manifest_h1.data --children
#   MEASURES=manifest_h1,put_h2 bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROFILE=1 TARGETS=dockgate REFS=0 ROUNDS="${ROUNDS:-1}" QUIET_WAIT="${QUIET_WAIT:-10}"
export MEASURES="${MEASURES:-get_h1,get_h2,put_cl,put_chunked,put_h2,manifest_h1,manifest_h2,newconn_h2,newconn_h1}"
exec bench/run.sh
