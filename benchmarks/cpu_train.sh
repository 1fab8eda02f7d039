#!/usr/bin/env bash
# One real-data training run that fits a 2-core CPU in under 10 minutes and scores >= 58% on test/:
#   benchmarks/cpu_train.sh OUT_DIR [DATA]        (DATA defaults to ../shared/fer2013)
# A narrow deeper_cnn (v2's design with one 3x3 conv per block and lighter widths, ~0.26M parameters),
# AdamW with a one-cycle schedule over 15 epochs, light augmentation and label smoothing.
# Leaves OUT_DIR/model.pt (best epoch by validation) and OUT_DIR/metrics.csv, then scores test/ once.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [DATA]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
data="${2:-$repo/../shared/fer2013}"
start=$SECONDS
python -m fer_search train deeper_cnn --data "$data" --epochs 15 --out "$out" \
    --set widths="(24,48,96,192)" --set convs_per_block=1 --set spatial_dropout=0.0 \
    --set fc_width=192 --set dropout=0.3 \
    --set optimizer=adamw --set lr=3e-3 --set weight_decay=5e-4 --set schedule=onecycle \
    --set batch_size=128 --set label_smoothing=0.1 \
    --set hflip=0.5 --set rotate=10 --set scale=0.1 --set translate=0.1
echo "training took $((SECONDS - start)) s"
python -m fer_search evaluate "$out/model.pt" --data "$data" --split test
