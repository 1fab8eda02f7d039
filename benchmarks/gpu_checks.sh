#!/usr/bin/env bash
# Every check that needs a GPU, in one run (for a lent GPU machine; prints the figures to record):
#   benchmarks/gpu_checks.sh [DATA]      (DATA defaults to synthetic; ../shared/fer2013 where present)
# 1. the CUDA tests, 2. trainer vs PIL+DataLoader throughput on CUDA, 3. 1/2/4/8 trials sharing the GPU.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-synthetic}"
cd "$repo"
python -m pytest -q -m gpu tests
python benchmarks/throughput.py --data "$data" --device cuda --runs 3
python benchmarks/search_throughput.py --data "$data" --skip-cpu
