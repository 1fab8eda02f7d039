#!/usr/bin/env bash
# One real-data training run planned to fit MINUTES on this machine, then one evaluation:
#   benchmarks/cpu_train.sh OUT_DIR [DATA] [MINUTES] [train options...]
#   (DATA defaults to ../shared/fer2013, MINUTES to 10; e.g. `... out/t ../shared/fer2013 10 --set precision=fp32`)
# `train --time-budget MINUTES` measures this machine's speed for the network below (a few timed steps of the
# trainer itself), then trains the epochs that fit in MINUTES from the command's start, so the one-cycle
# schedule anneals to its end on any CPU. The network: deeper_cnn with one 3x3 conv per block at 32-64-128-256
# channels (~0.4M parameters; bf16 autocast where the CPU has it), 44-pixel random crops and flips, weight EMA,
# AdamW on a one-cycle schedule, light regularisation. Training images identical to test images are left out.
# Leaves OUT_DIR/model.pt, metrics.csv and plan.json (plan vs actual), scores test/ once with ten crops, and
# writes the figures to benchmarks/results/cpu_train-LABEL.json (LABEL: the machine kind, e.g. cpu-bf16).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [DATA] [MINUTES] [train options...]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
data="${2:-$repo/../shared/fer2013}"
minutes="${3:-10}"
shift $(( $# < 3 ? $# : 3 ))
started=$(date +%s.%N)
python -m fer_search train deeper_cnn --data "$data" --time-budget "$minutes" --out "$out" \
    --set widths="(32,64,128,256)" --set convs_per_block=1 --set spatial_dropout=0.0 \
    --set fc_width=256 --set dropout=0.1 \
    --set optimizer=adamw --set lr=3e-3 --set weight_decay=0.01 --set schedule=onecycle \
    --set batch_size=128 --set label_smoothing=0.05 --set ema=0.999 \
    --set crop=44 --set hflip=0.5 --set tta=flip "$@"
trained=$(date +%s.%N)
python -m fer_search evaluate "$out/model.pt" --data "$data" --split test --tta crops --json > "$out/test_crops.json"
python "$repo/benchmarks/budget_figures.py" train "$out" --minutes "$minutes" --started "$started" \
    --trained "$trained" --test-json "$out/test_crops.json"
