#!/usr/bin/env bash
# A real-data search planned to fit MINUTES on this machine, then its ensemble (one evaluation):
#   benchmarks/cpu_search.sh STORAGE_DIR [DATA] [MINUTES] [run options...]
#   (DATA defaults to ../shared/fer2013, MINUTES to 20; e.g. `... /tmp/s ../shared/fer2013 20 --set precision=fp32`)
# `run --time-budget MINUTES` measures this machine (one two-thread trial vs two one-thread trials at once, on
# the networks of benchmarks/cpu_space.yaml) and plans: its two points (two networks a little deeper than
# cpu_train.sh's, on its recipe) each get the epochs that fill their lane, so both anneal to their end on any CPU
# and the ensemble has two strong, different members, rather than more, shorter trials. A longer --time-budget with
# more --num-samples goes on with TPE over the space's ranges. Then `ensemble --top 3 --tta crops` (members,
# weights and temperature chosen on validation; test scored once, reported only). Figures go to
# benchmarks/results/cpu_search-LABEL.json.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 STORAGE_DIR [DATA] [MINUTES] [run options...]" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
storage="$1"
data="${2:-$repo/../shared/fer2013}"
minutes="${3:-20}"
shift $(( $# < 3 ? $# : 3 ))
started=$(date +%s.%N)
python -m fer_search run --space "$repo/benchmarks/cpu_space.yaml" --data "$data" --storage "$storage" \
    --name cpu_search --num-samples 2 --gpus 0 --time-budget "$minutes" --seed 0 "$@"
searched=$(date +%s.%N)
python "$repo/benchmarks/search_summary.py" "$storage" cpu_search --started "$started"
python -m fer_search ensemble --top 3 --storage "$storage" --name cpu_search --data "$data" --tta crops \
    --out "$storage/ensemble" --json "$storage/ensemble/scores.json"
python "$repo/benchmarks/budget_figures.py" search "$storage" cpu_search --minutes "$minutes" --started "$started" \
    --searched "$searched" --ensemble-json "$storage/ensemble/scores.json"
