#!/usr/bin/env bash
# The simple_cnn series as it ran, sized for this project's 2-core CPU (goal: 30 minutes):
#   benchmarks/reproduce_simple_cnn.sh [DATA [OPTION...]]   (DATA defaults to ../shared/fer2013; STORAGE=DIR, default
#   runs/; OPTIONs go to `reproduce`, e.g. `synthetic --max-train-images 256` for a quick check of the script itself,
#   or `--set precision=fp32` with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 for a CPU without bf16)
# The overfit check (200 images), v1 (30 epochs, patience 5), v2 (20 epochs, patience 5, augmentation) and v3 (v2
# with weighted loss AND oversampling, AdamW), each with its own budget, all four at once on one thread each
# (--cpus-per-trial 0.5: the three long runs share the two cores instead of one waiting); then the table of what
# the series' runs printed beside what this run measured alike, with the held-out test figures, printed and
# written to STORAGE/reproduce_simple_cnn-DATE-TIME/reproduce.{md,csv,json}, and the figures with the time to
# benchmarks/results/reproduce_simple_cnn-LABEL.json (benchmarks/results.py; $FER_SEARCH_RESULTS_DIR elsewhere).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$repo/../shared/fer2013}"
shift || true
storage="${STORAGE:-$repo/runs}"
name="reproduce_simple_cnn-$(date +%Y%m%d-%H%M%S)"
start=$SECONDS
python -m fer_search reproduce simple_cnn --data "$data" --storage "$storage" --name "$name" --gpus 0 \
    --cpus-per-trial 0.5 --seed 0 "$@"
seconds=$((SECONDS - start))
echo "reproduce simple_cnn took $seconds s"
python "$repo/benchmarks/results.py" reproduce_simple_cnn seconds="$seconds" experiment="$storage/$name" \
    --json "$storage/$name/reproduce.json" --command "benchmarks/reproduce_simple_cnn.sh $data $*"
