#!/usr/bin/env bash
# Every check that needs a GPU, in one run (for a lent GPU machine; prints the figures to record):
#   benchmarks/gpu_checks.sh [DATA]      (DATA defaults to synthetic; ../shared/fer2013 where present)
# 1. the CUDA tests, 2. trainer vs PIL+DataLoader throughput on CUDA (bf16 and fp32, each side in the same
#    precision), 3. 1/2/4/8 trials sharing the GPU, 4. the whole documented series run as documented
#    (`reproduce all`), eight trials sharing the GPU; its table lands in $OUT/gpu_reproduce/*/reproduce.md where
#    the machine has $OUT, else /tmp/gpu_reproduce, 5. the search's value (benchmarks/search_value.py): the
#    documented points alone vs random search + ASHA vs TPE + ASHA on benchmarks/gpu_space.yaml, 3 seeds each,
#    SEARCH_VALUE_MINUTES (30) GPU-minutes per method and seed, trials sharing the GPU (4.5 hours at 30).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-synthetic}"
cd "$repo"
python -m pytest -q -m gpu tests
python benchmarks/throughput.py --data "$data" --device cuda --runs 3
python benchmarks/search_throughput.py --data "$data" --skip-cpu
python -m fer_search reproduce all --data "$data" --gpus 1 --gpus-per-trial 0.125 --storage "${OUT:-/tmp}/gpu_reproduce"
python benchmarks/search_value.py "${OUT:-/tmp}/search_value" --data "$data" --space benchmarks/gpu_space.yaml \
    --minutes "${SEARCH_VALUE_MINUTES:-30}" --seeds 3 --gpus 1
