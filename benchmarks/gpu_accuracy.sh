#!/usr/bin/env bash
# A GPU accuracy search plus its ensemble, sized to finish in 8 minutes on one H200:
#   benchmarks/gpu_accuracy.sh [DATA] [--smoke]   (DATA defaults to ../shared/fer2013; STORAGE=dir to keep the runs)
# Runs benchmarks/gpu_space.yaml (VGG, crops, SGD; four trials per GPU) for 6 minutes, prints the wall time
# to the series' best single model as reproduced here (ResNet18 config 1's held-out test accuracy, from
# benchmarks/gpu_checks.sh's `reproduce all`; no target until a GPU has measured it), the best single trial and
# then the ensemble of 3 (bagged greedy from the best 20, ten-crop TTA). --smoke: a tiny CPU run of the same
# pipeline (the tests).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$repo/../shared/fer2013}"
storage="${STORAGE:-$(mktemp -d)}"
if [ "${2:-}" = "--smoke" ]; then
    budget=(--smoke --gpus 0 --set 'widths=[8,16,32,64]' --set fc_width=32)
else
    budget=(--gpus 1 --num-samples 200 --max-epochs 30 --grace-period 10 --time-budget 6)
fi
started=$(date +%s.%N)
python -m fer_search run --space "$repo/benchmarks/gpu_space.yaml" --data "$data" --storage "$storage" \
    --name gpu_accuracy "${budget[@]}"
python "$repo/benchmarks/search_summary.py" "$storage" gpu_accuracy --started "$started"
python -m fer_search ensemble --top 3 --library 20 --tta crops --data "$data" --storage "$storage" \
    --name gpu_accuracy --out "$storage/ensemble"
echo "wall time, search and ensemble: $(python -c "import time; print(round(time.time() - $started))") s"
