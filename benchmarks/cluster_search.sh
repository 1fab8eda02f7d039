#!/usr/bin/env bash
# The same small real-data search twice, on this machine: across a local 3-node Ray cluster
# (tests/local_cluster.py, Ray's multi-node test utility: a head node without CPUs and two 1-CPU
# worker nodes, all on 127.0.0.1) and on one node with 2 CPUs. Prints each one's trials per node and
# wall time (Ray start-up included; the cluster's time also covers starting its nodes).
#   benchmarks/cluster_search.sh [DATA]      (DATA defaults to ../shared/fer2013; `synthetic` for a dry run)
# Four 2-epoch trials of benchmarks/cpu_space.yaml on 8,192 training images per epoch: a few minutes on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$repo/../shared/fer2013}"
storage="$(mktemp -d /tmp/cluster_search.XXXXXX)"
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0  # every node and driver on 127.0.0.1 (see tests/local_cluster.py)
search=(--space "$repo/benchmarks/cpu_space.yaml" --data "$data" --storage "$storage" --num-samples 4
        --max-epochs 2 --grace-period 2 --max-train-images 8192 --cpus-per-trial 1 --gpus 0 --seed 0)
now() { date +%s.%N; }

started=$(now)
python "$repo/tests/local_cluster.py" --head-cpus 0 --worker-cpus 1 1 -- \
    python -m fer_search run "${search[@]}" --name cluster --address '{address}' --storage-shared
cluster_s=$(python -c "print($(now) - $started)")

started=$(now)
python -m fer_search run "${search[@]}" --name single --cpus 2
single_s=$(python -c "print($(now) - $started)")

echo
python "$repo/benchmarks/cluster_summary.py" "$storage" "cluster=$cluster_s" "single=$single_s" --command-args "$@"
echo "trial files: $storage"
