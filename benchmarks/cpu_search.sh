#!/usr/bin/env bash
# A real-data search that fits this project's 2-core CPU machine in under 20 minutes:
#   benchmarks/cpu_search.sh STORAGE_DIR [DATA]      (DATA defaults to ../shared/fer2013)
# Two 1-CPU trials at a time over benchmarks/cpu_space.yaml: its two points, then TPE, 13 epochs each.
# Two waves of two trials fill the budget, so ASHA's grace period is the whole run (a trial stopped
# half-way on a one-cycle schedule is no ensemble member); the time budget ends the search at 18.5
# minutes (a trial cut there keeps its best epoch). Then it prints what the search reached (test is
# reported, never selected on).
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
    --name cpu_search --num-samples 4 --max-epochs 13 --grace-period 13 \
    --cpus-per-trial 1 --gpus 0 --time-budget 18.5 --seed 0
python "$repo/benchmarks/search_summary.py" "$storage" cpu_search --started "$started"
echo "search wall time: $(python -c "import time; print(round(time.time() - $started))") s"
