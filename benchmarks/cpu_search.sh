#!/usr/bin/env bash
# A real-data search that fits this project's 2-core CPU machine in under 20 minutes:
#   benchmarks/cpu_search.sh STORAGE_DIR [DATA]      (DATA defaults to ../shared/fer2013)
# Two 1-CPU trials at a time; five trials of up to 10 epochs starting from the two points of
# benchmarks/cpu_space.yaml; ASHA stops a trial below the median at epoch 5; the time budget stops
# whatever still runs at 18 minutes (its best epoch is kept). Every trial leaves best/model.pt and
# best/probs.npz, so `python -m fer_search ensemble --top 3 --storage STORAGE_DIR` can follow.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 STORAGE_DIR [DATA]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
storage="$1"
data="${2:-$repo/../shared/fer2013}"
exec python -m fer_search run --space "$repo/benchmarks/cpu_space.yaml" --data "$data" --storage "$storage" \
    --name cpu_search --num-samples 5 --max-epochs 10 --grace-period 5 --reduction-factor 2 \
    --cpus-per-trial 1 --gpus 0 --time-budget 18 --seed 0
