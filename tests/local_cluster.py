"""A Ray cluster of several nodes on this machine, for the multi-node tests and benchmarks/cluster_search.sh.

Ray's own multi-node test utility (`ray.cluster_utils.Cluster`) starts a head node and worker nodes,
each a real raylet with its own object store and CPU count, all on 127.0.0.1: Ray 2.60 on Linux
would otherwise put the machine's network address in their place, so RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
is set before Ray is imported, here and for everything started from here. The cluster keeps its
files (and its address file, which a plain `ray.init()` would find) in a private RAY_TMPDIR, not in
the machine-wide /tmp/ray that other Ray users share.

    python tests/local_cluster.py [--head-cpus 0] [--worker-cpus 1 1] -- COMMAND ...

starts the cluster, runs COMMAND with every `{address}` replaced by the cluster's address, stops the
cluster and exits with COMMAND's status.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: every node on 127.0.0.1

# A node killed outright is declared dead after about three seconds (Ray's default: about half a minute),
# so a test of losing one does not wait long.
FAST_NODE_FAILURE_DETECTION = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                               "health_check_failure_threshold": 3}
OBJECT_STORE_BYTES = 300 * 1024 * 1024  # per node; the full FER2013 arrays take about 80 MB


@contextlib.contextmanager
def local_cluster(head_cpus: int = 0, worker_cpus: tuple[int, ...] = (1, 1),
                  worker_env: dict[str, str] | None = None) -> Iterator:
    """Yields the running `ray.cluster_utils.Cluster` (its `address`, `head_node`, `worker_nodes`,
    `remove_node`). `worker_env`: variables only the worker nodes (and so their trials) get."""
    ray_tmpdir = tempfile.mkdtemp(prefix="fer_ray_", dir="/tmp")  # short: Ray's socket paths live below it
    previous = dict(os.environ)
    os.environ["RAY_TMPDIR"] = ray_tmpdir  # for the nodes, and for drivers started with this environment
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "object_store_memory": OBJECT_STORE_BYTES,
        "_system_config": FAST_NODE_FAILURE_DETECTION})
    try:
        os.environ.update(worker_env or {})  # node processes take the environment they are started with
        for cpus in worker_cpus:
            cluster.add_node(num_cpus=cpus, object_store_memory=OBJECT_STORE_BYTES)
        cluster.wait_for_nodes()
        os.environ.clear()
        os.environ.update({**previous, "RAY_TMPDIR": ray_tmpdir})
        yield cluster
    finally:
        cluster.shutdown()
        os.environ.clear()
        os.environ.update(previous)
        shutil.rmtree(ray_tmpdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head-cpus", type=int, default=0, help="CPUs of the head node [%(default)s: no trials there]")
    parser.add_argument("--worker-cpus", type=int, nargs="+", default=[1, 1], help="one CPU count per worker node")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... ({address}: the cluster's)")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with local_cluster(args.head_cpus, tuple(args.worker_cpus)) as cluster:
        print(f"local cluster at {cluster.address}: head {args.head_cpus} CPU, workers "
              f"{', '.join(f'{n} CPU' for n in args.worker_cpus)}", flush=True)
        return subprocess.run([part.replace("{address}", cluster.address) for part in command]).returncode


if __name__ == "__main__":
    sys.exit(main())
