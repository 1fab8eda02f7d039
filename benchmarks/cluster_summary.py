"""Trials per node and wall time of benchmark searches, read from their trial files:

    python benchmarks/cluster_summary.py STORAGE NAME=WALL_SECONDS [NAME=WALL_SECONDS ...]

One line per experiment: its wall time (measured by the calling script), its trials, and how many
of them ran on each Ray node (a trial restored onto another node counts on both). The figures go to
benchmarks/results/cluster_search-LABEL.json with the machine (results.py).
"""
from __future__ import annotations

import argparse
from collections import Counter

import results
from fer_search.search import layout


def trials_per_node(trials: list[layout.Trial]) -> Counter:
    return Counter(layout.short_node_id(node) for trial in trials for node in trial.nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage")
    parser.add_argument("runs", nargs="+", metavar="NAME=WALL_SECONDS")
    parser.add_argument("--command-args", nargs="*", default=[], help="the calling script's arguments, recorded")
    args = parser.parse_args()
    figures = {}
    for run in args.runs:
        name, seconds = run.rsplit("=", 1)
        trials = layout.list_trials(args.storage, name)
        nodes = trials_per_node(trials)
        spread = ", ".join(f"{node}: {count}" for node, count in sorted(nodes.items()))
        print(f"{name:<10} wall time {float(seconds):6.0f} s, {len(trials)} trials, "
              f"{len(nodes)} node(s) ({spread})")
        figures[name] = {"wall_s": round(float(seconds)), "trials": len(trials),
                         "trials_per_node": sorted(nodes.values(), reverse=True)}
    results.save("cluster_search", figures, label=results.machine_label(),
                 command=["benchmarks/cluster_search.sh", *args.command_args])


if __name__ == "__main__":
    main()
