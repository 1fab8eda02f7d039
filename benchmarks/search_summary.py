"""What a benchmark search reached, read from its trial files (test figures are reported only):

    python benchmarks/search_summary.py STORAGE NAME --started UNIX_SECONDS [--target ACCURACY]

Prints the wall time from `--started` (taken by the calling script just before `run`) to the first
epoch of any trial whose test accuracy reached `--target`, the best single trial by validation with its
test accuracy, and the best test accuracy of any trial. The target defaults to the series' best single
model reproduced here: ResNet18 config 1's held-out test accuracy on real FER2013, as `reproduce all`
measured it on a GPU (benchmarks/gpu_checks.sh writes benchmarks/results/reproduce_all-cuda.json). Its
65.31% is no target: a best-epoch validation score on a split that shares duplicates with its training
part. Until a GPU has run it there is no target, and the script says so.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fer_search.search import layout

REPRODUCED = Path(__file__).resolve().parent / "results" / "reproduce_all-cuda.json"


def reproduced_target(path: Path = REPRODUCED) -> float | None:
    """ResNet18 config 1's held-out test accuracy from `reproduce all` on real data, or None if not measured."""
    if not path.is_file():
        return None
    figures = json.loads(path.read_text())["figures"]
    if figures.get("data", "synthetic") == "synthetic":
        return None
    return next((row["this_run"] for row in figures["reproduce"] if (row["family"], row["version"], row["quantity"])
                 == ("resnet", "resnet18_config1", "test_acc")), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage")
    parser.add_argument("name")
    parser.add_argument("--started", type=float, required=True, help="Unix time the search was started")
    parser.add_argument("--target", type=float, default=reproduced_target(),
                        help="test accuracy to time [ResNet18 config 1's, reproduced: %(default)s]")
    args = parser.parse_args()

    trials = layout.list_trials(args.storage, args.name)
    reached = []
    for trial in trials if args.target is not None else []:
        path = trial.path / "result.json"
        for line in path.read_text().splitlines() if path.is_file() else []:
            result = json.loads(line)
            if result.get("test_acc", 0.0) >= args.target:
                reached.append((result["timestamp"] - args.started, trial.name, result["training_iteration"]))
                break
    scored = [(t, t.summary()) for t in trials if t.summary()]
    print(f"trials: {len(trials)} ({sum(t.status == layout.COMPLETED for t in trials)} completed, "
          f"{sum(t.status == layout.STOPPED for t in trials)} stopped early)")
    if args.target is None:
        print("time to the reproduced ResNet18 config 1's test acc: no target yet (not measured: no GPU has run "
              "`reproduce all` on real data, benchmarks/gpu_checks.sh)")
    elif reached:
        seconds, name, epoch = min(reached)
        print(f"time to test acc >= {args.target:.4f}: {seconds:.0f} s ({name}, epoch {epoch})")
    else:
        print(f"time to test acc >= {args.target:.4f}: not reached")
    if scored:
        trial, summary = max(scored, key=lambda ts: ts[1]["metrics"][ts[1]["metric"]])
        m = summary["metrics"]
        print(f"best single trial by validation: {trial.name}: val acc {m['val_acc']:.4f}, "
              f"test acc {m.get('test_acc', float('nan')):.4f}")
        best_test = max(s["metrics"].get("test_acc", 0.0) for _, s in scored)
        print(f"best test acc of any trial (reported, never selected on): {best_test:.4f}")


if __name__ == "__main__":
    main()
