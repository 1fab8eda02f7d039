"""cpu_search.sh's accuracy over several seeds: how often its ensemble meets the goals, and by how much it beats
its best member, with the paired-bootstrap interval of that gain.

    python benchmarks/cpu_search_seeds.py STORAGE [STORAGE ...] [--name cpu_search]

Each STORAGE holds one `benchmarks/cpu_search.sh STORAGE DATA MINUTES [--seed N]` run on this machine kind (the seed
carves the validation split and seeds both trials). Read from it: the seed (in each trial's configuration), each
trial's test accuracy (flip, reported only) and STORAGE/ensemble/scores.json (`ensemble --json`: members and
ensemble with ten crops, the ensemble's gain over each member and its interval). One row per seed, and per goal of
the machine kind (README, "Time goals") the seeds that meet it; the figures go to
benchmarks/results/cpu_search_seeds-LABEL.json (LABEL: results.machine_label()), compared with that kind's
cpu_train-LABEL.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import results
from analysis.intervals import CONFIDENCE
from budget_figures import ENSEMBLE, best_single_test_acc, gain_figures, trial_figures

# The search + ensemble's goal on test/, per machine kind (README, "Time goals"): an accuracy, above cpu_train.sh's
# figure, and on cpu-bf16 above every single trial too.
ACCURACY_GOAL = {"cpu-bf16": 0.65, "cpu-avx2": 0.625}
ABOVE_EVERY_TRIAL_GOAL = {"cpu-bf16": True, "cpu-avx2": False}


def seed_figures(storage: Path, name: str, cpu_train: float | None) -> dict:
    from fer_search.search import layout

    searched = layout.list_trials(storage, name)
    if not searched:
        raise SystemExit(f"{storage / name}: no trials (is STORAGE a cpu_search.sh storage, and --name its "
                         "experiment?)")
    scores = json.loads((storage / "ensemble" / "scores.json").read_text())
    members = {model: row for model, row in scores.items() if not model.startswith(ENSEMBLE)}
    best_member = max(members, key=lambda m: members[m]["test_acc"])
    if "test_ensemble_gain" not in members[best_member]:
        raise SystemExit(f"{storage}/ensemble/scores.json has no gain intervals: rerun its `ensemble --json` "
                         "(benchmarks/cpu_search.sh's last command) with this commit")
    trials = trial_figures(storage, name)
    ensemble = scores[ENSEMBLE]["test_acc"]
    return {"seed": int(searched[0].config.get("split_seed", 0)), "storage": str(storage),
            "epochs": sorted({t["epochs"] for t in trials.values()}),
            "ensemble_val_acc": scores[ENSEMBLE]["val_acc"], "ensemble_test_acc": ensemble,
            "members_test_acc": {m: row["test_acc"] for m, row in members.items()},
            "trials_test_acc_flip": {t: row["test_acc"] for t, row in trials.items()},
            "best_member": best_member,
            "test_gain_over_best_member": gain_figures(members[best_member]),
            "above_every_trial": ensemble > best_single_test_acc(trials, members),
            "above_cpu_train": None if cpu_train is None else ensemble > cpu_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storages", nargs="+", type=Path, metavar="STORAGE")
    parser.add_argument("--name", default="cpu_search", help="the experiment's name in each storage [%(default)s]")
    args = parser.parse_args()
    label = results.machine_label()
    try:
        cpu_train = results.load("cpu_train", label)["figures"]["test_acc_ten_crops"]
    except (FileNotFoundError, KeyError):
        cpu_train = None
    runs = sorted((seed_figures(s.absolute(), args.name, cpu_train) for s in args.storages), key=lambda r: r["seed"])
    goal = ACCURACY_GOAL.get(label)
    print(f"{'seed':>4}  {'ensemble test':>13}  {'best member':>11}  ensemble - best member [95% interval]")
    for run in runs:
        gain = run["test_gain_over_best_member"]
        best = run["members_test_acc"][run["best_member"]]
        print(f"{run['seed']:>4}  {run['ensemble_test_acc']:>13.4f}  {best:>11.4f}"
              f"  {gain['gain']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]")
    figures = {"seeds": [r["seed"] for r in runs], "runs": runs, "interval_confidence": CONFIDENCE,
               "cpu_train_test_acc": cpu_train,
               "accuracy_goal": goal,
               "median_ensemble_test_acc": statistics.median(r["ensemble_test_acc"] for r in runs),
               "median_test_gain_over_best_member": statistics.median(r["test_gain_over_best_member"]["gain"]
                                                                      for r in runs),
               "seeds_meeting_accuracy_goal": None if goal is None else sum(r["ensemble_test_acc"] >= goal
                                                                            for r in runs),
               "seeds_above_every_trial": sum(r["above_every_trial"] for r in runs),
               "seeds_above_cpu_train": None if cpu_train is None else sum(r["above_cpu_train"] for r in runs),
               "seeds_meeting_the_whole_goal": None if goal is None or cpu_train is None else sum(
                   r["ensemble_test_acc"] >= goal and r["above_cpu_train"]
                   and (r["above_every_trial"] or not ABOVE_EVERY_TRIAL_GOAL[label]) for r in runs),
               "seeds_whose_gain_interval_excludes_0": sum(r["test_gain_over_best_member"]["low"] > 0
                                                           or r["test_gain_over_best_member"]["high"] < 0
                                                           for r in runs)}
    for key, value in figures.items():
        if key != "runs":
            print(f"{key}: {value}")
    results.save("cpu_search_seeds", figures, label=label)


if __name__ == "__main__":
    main()
