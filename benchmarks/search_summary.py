"""What a benchmark search reached, read from its trial files (test figures are reported only):

    python benchmarks/search_summary.py STORAGE NAME --started UNIX_SECONDS [--target 0.653]

Prints the wall time from `--started` (taken by the calling script just before `run`) to the first
epoch of any trial whose test accuracy reached `--target` (the documented series' best, 65.31%), the
best single trial by validation with its test accuracy, and the best test accuracy of any trial.
"""
from __future__ import annotations

import argparse
import json

from fer_search.search import layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage")
    parser.add_argument("name")
    parser.add_argument("--started", type=float, required=True, help="Unix time the search was started")
    parser.add_argument("--target", type=float, default=0.6531, help="test accuracy to time [%(default)s]")
    args = parser.parse_args()

    trials = layout.list_trials(args.storage, args.name)
    reached = []
    for trial in trials:
        path = trial.path / "result.json"
        for line in path.read_text().splitlines() if path.is_file() else []:
            result = json.loads(line)
            if result.get("test_acc", 0.0) >= args.target:
                reached.append((result["timestamp"] - args.started, trial.name, result["training_iteration"]))
                break
    scored = [(t, t.summary()) for t in trials if t.summary()]
    print(f"trials: {len(trials)} ({sum(t.status == layout.COMPLETED for t in trials)} completed, "
          f"{sum(t.status == layout.STOPPED for t in trials)} stopped early)")
    if reached:
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
