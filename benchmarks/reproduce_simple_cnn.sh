#!/usr/bin/env bash
# The documented simple_cnn series run as documented, sized for this project's 2-core CPU (target: 30 minutes):
#   benchmarks/reproduce_simple_cnn.sh [DATA [OPTION...]]   (DATA defaults to ../shared/fer2013; STORAGE=DIR, default
#   runs/; OPTIONs go to `reproduce`, e.g. `synthetic --max-train-images 256` for a quick check of the script itself)
# The overfit check (200 images), v1 (30 epochs, patience 5), v2 (20 epochs, patience 7, plateau, augmentation)
# and v3 (v2 with weighted loss AND oversampling), each with its own documented budget, two 1-CPU trials at a
# time; then the table of what the notes reported beside what this run measured, printed and written to
# STORAGE/reproduce-simple_cnn-DATE-TIME/reproduce.{md,csv}.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$repo/../shared/fer2013}"
shift || true
storage="${STORAGE:-$repo/runs}"
start=$SECONDS
python -m fer_search reproduce simple_cnn --data "$data" --storage "$storage" --gpus 0 --cpus-per-trial 1 --seed 0 "$@"
echo "reproduce simple_cnn took $((SECONDS - start)) s"
