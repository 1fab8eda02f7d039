"""Does the search earn its place? Three ways to spend the same budget on the same data and space:

  points  the documented points (the hand recipe) alone, planned to fill the budget (`run --num-samples P`)
  random  random search + ASHA over the same ranges, without the points (`run --sampler random --skip-points`)
  tpe     TPE warm-started from the points + ASHA, as `run` does by default

each with several seeds (`run --seed`: the validation carve, TPE's draws and the trials' seeds). It plots the
best validation accuracy so far against time (median and range over seeds, from the time every seed's run
has scored an epoch; time from each run's start, planning included), builds each run's final ensemble (`ensemble --top 3`: bagged greedy selection on
validation from the stored probabilities) and scores it once on test, and writes a table.

    python benchmarks/search_value.py OUT [--data DATA] [--space FILE] [--minutes 10 | --epochs-budget E]
        [--seeds 2] [--max-train-images N] [--trial-epochs E] [--gpus N] [--cpus-per-trial N] [--set KEY=VALUE ...]
    python benchmarks/search_value.py OUT --smoke     # a tiny version on synthetic data (the tests run it)

Writes OUT/search_value.png, OUT/search_value.md, each run under OUT/runs/ with its log in OUT/logs/, and the
figures with benchmarks/results.py (search_value-LABEL.json, the plot beside it as search_value-LABEL.png).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import results

REPO = Path(__file__).resolve().parent.parent
METHODS = ("points", "random", "tpe")
# An epochs budget: the same trials on a busy machine as on a quiet one. One layout (one-thread trials) keeps the
# measuring short.
SMOKE = ["--data", "synthetic", "--epochs-budget", "1.2", "--seeds", "2", "--max-train-images", "512",
         "--trial-epochs", "2", "--cpus-per-trial", "1", "--set", "widths=[8,16,32,64]", "--set", "fc_width=32"]


def run_command(method: str, seed: int, args, points: int) -> list[str]:
    budget = ["--time-budget", f"{args.minutes:g}"] if args.epochs_budget is None else \
        ["--epochs-budget", f"{args.epochs_budget:g}"]
    command = [sys.executable, "-m", "fer_search", "run", "--space", str(args.space), "--data", args.data,
               "--storage", str(args.out / "runs"), "--name", f"{method}-s{seed}", "--seed", str(seed), *budget]
    if args.gpus is not None:
        command += ["--gpus", str(args.gpus)]
    if args.max_train_images:
        command += ["--max-train-images", str(args.max_train_images)]
    if args.cpus_per_trial:
        command += ["--cpus-per-trial", f"{args.cpus_per_trial:g}"]
    for option in args.set:
        command += ["--set", option]
    if method == "points":
        return command + ["--num-samples", str(points)]
    command += ["--max-epochs", str(args.trial_epochs)] if args.trial_epochs else []
    return command + (["--sampler", "random", "--skip-points"] if method == "random" else [])


def best_so_far(storage: Path, name: str, started: float, grid: np.ndarray) -> np.ndarray:
    """The best validation accuracy any trial of the run had reached at each time of `grid` (NaN before any)."""
    from fer_search.search import layout

    events = sorted((row["timestamp"] - started, row["val_acc"]) for trial in layout.list_trials(storage, name)
                    for row in trial.results if "val_acc" in row and "timestamp" in row)
    curve = np.full(len(grid), np.nan)
    best = -np.inf
    for seconds, value in events:
        best = max(best, value)
        curve[grid >= seconds] = best
    return curve


def final_ensemble(storage: Path, name: str) -> dict:
    """`ensemble --top 3` (greedy, library 20) on the run's stored probabilities: validation and test accuracy."""
    from analysis import ensemble as ens
    from analysis.leaderboard import find_trials
    from analysis.report import ENSEMBLE, score

    trials = find_trials(storage, [name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        candidates = ens.load_candidates(trials, progress=False)
        if len(candidates) > 1:
            members, weights, library = ens.choose(candidates, 3, "val_acc", "greedy", library=20)
        else:  # one finished trial is its own ensemble
            members, weights, library = candidates, np.ones(1), 1
    ensemble = ens.build(members, "greedy", "val_acc", ens.members_tta(members), weights, library)
    reports = score(ensemble).reports
    return {"trials": len(trials), "members": len(members), "val_acc": reports["val"][ENSEMBLE]["accuracy"],
            "test_acc": reports["test"][ENSEMBLE]["accuracy"] if "test" in reports else None,
            "best_trial_val_acc": max(c.trial.summary()["metrics"]["val_acc"] for c in candidates)}


def run_all(args, points: int) -> dict:
    """Every method and seed, seeds outermost (a drift in the machine's speed hits every method alike)."""
    runs = {}
    horizon = args.minutes * 60 if args.epochs_budget is None else None
    for seed in range(args.seeds):
        for method in METHODS:
            name = f"{method}-s{seed}"
            log = args.out / "logs" / f"{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"{name}: running (log {log})", flush=True)
            started = time.time()
            with open(log, "w") as handle:
                code = subprocess.run(run_command(method, seed, args, points), stdout=handle, stderr=subprocess.STDOUT,
                                      cwd=REPO).returncode
            seconds = time.time() - started
            runs[name] = {"method": method, "seed": seed, "exit_code": code, "seconds": seconds, "started": started,
                          "minutes": seconds / 60}
            if code == 0:
                runs[name].update(final_ensemble(args.out / "runs", name))
            print(f"{name}: exit {code}, {seconds:.0f} s" + (f", ensemble val {runs[name]['val_acc']:.4f} test "
                                                            f"{runs[name]['test_acc']:.4f}" if code == 0 else ""),
                  flush=True)
    horizon = horizon or max(run["seconds"] for run in runs.values())
    grid = np.linspace(0, horizon, 200)
    for name, run in runs.items():
        if run["exit_code"] == 0:
            run["curve"] = best_so_far(args.out / "runs", name, run["started"], grid).tolist()
    return {"grid_s": grid.tolist(), "runs": runs}


def summarise(found: dict) -> dict[str, dict]:
    """Per method: median and range over seeds of the best validation accuracy and the ensemble's scores."""
    table = {}
    for method in METHODS:
        done = [r for r in found["runs"].values() if r["method"] == method and r["exit_code"] == 0]
        row = {"runs": len(done), "failed": sum(r["method"] == method and r["exit_code"] != 0
                                                for r in found["runs"].values())}
        for key in ("minutes", "best_trial_val_acc", "val_acc", "test_acc", "trials", "members"):
            values = [r[key] for r in done if r.get(key) is not None]
            if values:
                row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        table[method] = row
    return table


def plot(found: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array(found["grid_s"]) / 60
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for method in METHODS:
        curves = np.array([r["curve"] for r in found["runs"].values() if r["method"] == method and "curve" in r])
        if not len(curves):
            continue
        # From the time every seed's run has scored an epoch (NaN before): then median and range are monotone.
        median, low, high = np.median(curves, 0), np.min(curves, 0), np.max(curves, 0)
        line, = axes.plot(grid, median, label=f"{method} (median of {len(curves)})")
        axes.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    axes.set(xlabel="minutes from the run's start", ylabel="best validation accuracy so far", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown(table: dict[str, dict], caption: str) -> str:
    def cell(row: dict, key: str) -> str:
        if key not in row:
            return "-"
        v = row[key]
        if key in ("trials", "members"):
            return f"{v['median']:g} [{v['min']:g}, {v['max']:g}]"
        if key == "minutes":
            return f"{v['median']:.1f} [{v['min']:.1f}, {v['max']:.1f}]"
        return f"{v['median']:.4f} [{v['min']:.4f}, {v['max']:.4f}]"

    lines = [caption, "", "| method | runs | minutes run | trials | best trial, val acc | ensemble val acc | "
             "ensemble test acc* |", "|---|---|---|---|---|---|---|"]
    for method, row in table.items():
        runs = f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        lines.append(f"| {method} | {runs} | {cell(row, 'minutes')} | {cell(row, 'trials')} | {cell(row, 'best_trial_val_acc')} | "
                     f"{cell(row, 'val_acc')} | {cell(row, 'test_acc')} |")
    lines += ["", "median [min, max] over seeds; * test scored once per run, reported only (nothing is chosen on it)"]
    return "\n".join(lines)


def parse(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "fer2013"))
    parser.add_argument("--space", type=Path, default=REPO / "benchmarks" / "cpu_space.yaml")
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget of each run [%(default)s]")
    parser.add_argument("--epochs-budget", type=float, help="instead of --minutes: epochs of the full training set")
    parser.add_argument("--seeds", type=int, default=2, help="runs per method, seeds 0.. [%(default)s]")
    parser.add_argument("--max-train-images", type=int, help="training images per epoch (a subset per epoch)")
    parser.add_argument("--trial-epochs", type=int, help="random/tpe: epochs of a trial [the plan's]")
    parser.add_argument("--gpus", type=int, help="GPUs of each run [run's default]")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs of a trial [each run measures the best]")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to every run")
    parser.add_argument("--smoke", action="store_true", help="a tiny version on synthetic data: " + " ".join(SMOKE))
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), *SMOKE])
    return args


def main(argv: list[str] | None = None) -> int:
    from search_spaces import load_space

    args = parse(argv)
    args.out = args.out.absolute()
    args.out.mkdir(parents=True, exist_ok=True)
    points = len(load_space(str(args.space)).points)
    found = run_all(args, points)
    table = summarise(found)
    budget = f"{args.minutes:g} min" if args.epochs_budget is None else f"{args.epochs_budget:g} epochs"
    label = results.machine_label()
    caption = (f"Same budget per run ({budget}), space {args.space.name}, data {Path(args.data).name}"
               + (f", {args.max_train_images:,} training images per epoch" if args.max_train_images else "")
               + f"; {args.seeds} seed(s) per method; machine kind {label}" + (" (smoke)" if args.smoke else ""))
    plot(found, args.out / "search_value.png", f"search value: {budget} per run, {label}")
    text = markdown(table, caption)
    (args.out / "search_value.md").write_text(text + "\n")
    print("\n" + text)
    settings = {"budget": budget, "space": str(args.space), "data": args.data, "seeds": args.seeds,
                "max_train_images": args.max_train_images, "trial_epochs": args.trial_epochs, "set": args.set,
                "smoke": args.smoke}
    (args.out / "search_value.json").write_text(json.dumps({"settings": settings, "table": table, **found}, indent=1))
    saved = results.save("search_value_smoke" if args.smoke else "search_value", {**settings, "table": table},
                         label=label)
    shutil.copy(args.out / "search_value.png", saved.with_suffix(".png"))
    print(f"plot: {args.out / 'search_value.png'}, table: {args.out / 'search_value.md'}")
    return 1 if any(r["exit_code"] for r in found["runs"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
