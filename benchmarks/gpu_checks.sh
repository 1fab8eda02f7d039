#!/usr/bin/env bash
# Every check that needs a GPU, in one run (for a lent GPU machine; prints the figures to record):
#   benchmarks/gpu_checks.sh [DATA]      (DATA defaults to synthetic; ../shared/fer2013 where present)
# 1. the CUDA tests, 2. trainer vs PIL+DataLoader throughput on CUDA (bf16 and fp32, each side in the same
#    precision), 3. 1/2/4/8 trials sharing the GPU, 4. the whole documented series as it ran (`reproduce all`),
#    eight trials sharing the GPU; its table lands in $OUT/gpu_reproduce/reproduce_all/reproduce.md where the
#    machine has $OUT, else /tmp/gpu_reproduce, and its figures (ResNet18 config 1's held-out test accuracy: the
#    target of gpu_accuracy.sh) in benchmarks/results/reproduce_all-cuda.json, 5. the search's value
#    (benchmarks/search_value.py): the documented points alone vs random search + ASHA vs TPE + ASHA on
#    benchmarks/gpu_space.yaml, 3 seeds each, SEARCH_VALUE_MINUTES (30) GPU-minutes per method and seed, trials
#    sharing the GPU (4.5 hours at 30).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-synthetic}"
cd "$repo"
python -m pytest -q -m gpu tests
python benchmarks/throughput.py --data "$data" --device cuda --runs 3
python benchmarks/search_throughput.py --data "$data" --skip-cpu
storage="${OUT:-/tmp}/gpu_reproduce"
start=$SECONDS
python -m fer_search reproduce all --data "$data" --gpus 1 --gpus-per-trial 0.125 --storage "$storage" \
    --name reproduce_all
python benchmarks/results.py reproduce_all data="$data" seconds=$((SECONDS - start)) \
    --json "$storage/reproduce_all/reproduce.json"
python benchmarks/search_value.py "${OUT:-/tmp}/search_value" --data "$data" --space benchmarks/gpu_space.yaml \
    --minutes "${SEARCH_VALUE_MINUTES:-30}" --seeds 3 --gpus 1
