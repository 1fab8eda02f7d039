#!/usr/bin/env bash
# One real-data training run that fits a 2-core CPU in under 10 minutes:
#   benchmarks/cpu_train.sh OUT_DIR [DATA]        (DATA defaults to ../shared/fer2013)
# A fast network (deeper_cnn with one 3x3 conv per block at
# 32-64-128-256 channels, ~0.4M parameters; bf16 autocast where the CPU has it) on a recipe
# for short runs: 44-pixel random crops and flips, weight EMA, AdamW on a one-cycle schedule
# over 20 epochs, light regularisation. Training images identical to test images are left out (the
# default). Leaves OUT_DIR/model.pt and OUT_DIR/metrics.csv, then scores test/ once with ten crops.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [DATA]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
data="${2:-$repo/../shared/fer2013}"
start=$SECONDS
python -m fer_search train deeper_cnn --data "$data" --epochs 20 --out "$out" \
    --set widths="(32,64,128,256)" --set convs_per_block=1 --set spatial_dropout=0.0 \
    --set fc_width=256 --set dropout=0.1 \
    --set optimizer=adamw --set lr=3e-3 --set weight_decay=0.01 --set schedule=onecycle \
    --set batch_size=128 --set label_smoothing=0.05 --set ema=0.999 \
    --set crop=44 --set hflip=0.5 --set tta=flip
echo "training took $((SECONDS - start)) s"
python -m fer_search evaluate "$out/model.pt" --data "$data" --split test --tta crops
echo "in all: $((SECONDS - start)) s"
