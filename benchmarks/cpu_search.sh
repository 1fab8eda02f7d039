#!/usr/bin/env bash
# A real-data search that fits this project's 2-core CPU machine in under 20 minutes:
#   benchmarks/cpu_search.sh STORAGE_DIR [DATA]      (DATA defaults to ../shared/fer2013)
# Two 1-CPU trials at a time over benchmarks/cpu_space.yaml: up to 12 epochs each, ASHA stops a trial
# below the median at epoch 6, and the time budget ends the search at 18.5 minutes (a trial cut there
# keeps its best epoch). Then it prints what the search reached (test is reported, never selected on).
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
    --name cpu_search --num-samples 8 --max-epochs 12 --grace-period 6 --reduction-factor 2 \
    --cpus-per-trial 1 --gpus 0 --time-budget 18.5 --seed 0
python "$repo/benchmarks/search_summary.py" "$storage" cpu_search --started "$started"
echo "search wall time: $(python -c "import time; print(round(time.time() - $started))") s"
