#!/usr/bin/env bash
# A real-data search that fits this project's 2-core CPU machine in under 20 minutes:
#   benchmarks/cpu_search.sh STORAGE_DIR [DATA]      (DATA defaults to ../shared/fer2013)
# Two one-thread trials at a time over benchmarks/cpu_space.yaml, 19 epochs each: an epoch of this network
# costs about 53 CPU-core-seconds (one thread or two), so the 18.5-minute budget buys about 40 epochs, and two
# full-length runs that anneal to their end make better ensemble members than more, shorter ones. ASHA's
# grace period is the whole run. The time budget ends the search whatever happens (a trial cut there keeps
# its best epoch and still counts). Then it prints what the search reached (test is reported, never
# selected on). A longer --time-budget and more --num-samples go on with TPE over the space's ranges.
# Next: python -m fer_search ensemble --top 3 --storage STORAGE_DIR --name cpu_search --data DATA --tta crops
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 STORAGE_DIR [DATA]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
storage="$1"
data="${2:-$repo/../shared/fer2013}"
started=$(date +%s.%N)
python -m fer_search run --space "$repo/benchmarks/cpu_space.yaml" --data "$data" --storage "$storage" \
    --name cpu_search --num-samples 2 --max-epochs 19 --grace-period 19 \
    --cpus-per-trial 1 --gpus 0 --time-budget 18.5 --seed 0
python "$repo/benchmarks/search_summary.py" "$storage" cpu_search --started "$started"
echo "search wall time: $(python -c "import time; print(round(time.time() - $started))") s"
