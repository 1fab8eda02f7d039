"""cpu_search.sh's accuracy over several seeds: how often its ensemble meets the goals, and by how much it beats
its best member, with the paired-bootstrap interval of that gain.

    python benchmarks/cpu_search_seeds.py [--label LABEL] [--name NAME]

Reads the results files of one machine kind (LABEL, by default this machine's: results.machine_label()) that
`benchmarks/cpu_search.sh STORAGE DATA MINUTES [--seed N]` and `benchmarks/cpu_train.sh OUT DATA MINUTES
[--seed N]` wrote: cpu_search-LABEL.json (seed 0) and cpu_search_seedN-LABEL.json, each with its trials' test
accuracy (flip, reported only), its members' and ensemble's (ten crops) and the ensemble's gain over its best
member with its interval; cpu_train-LABEL.json and cpu_train_seedN-LABEL.json. One row per seed, and per goal of
the machine kind (README, "Time goals") the seeds that meet it. Each seed is compared with cpu_train.sh's run of
the same seed (the same validation split, so the same training images), or with seed 0's where its seed has
none. The figures go to benchmarks/results/cpu_search_seeds-LABEL.json. `--name` reads the searches kept under
another results name instead (NAME-LABEL.json, NAME_seedN-LABEL.json; e.g. cpu_search_earlier_plan, the runs of an
earlier plan) and writes NAME_seeds-LABEL.json.
"""
from __future__ import annotations

import argparse
import statistics

import results
from analysis.intervals import CONFIDENCE
from budget_figures import best_single_test_acc, cpu_train_by_seed, cpu_train_for, seeded_results

# The search + ensemble's goal on test/, per machine kind (README, "Time goals"): an accuracy, above cpu_train.sh's
# figure, and on cpu-bf16 above every single trial too.
ACCURACY_GOAL = {"cpu-bf16": 0.65, "cpu-avx2": 0.625}
ABOVE_EVERY_TRIAL_GOAL = {"cpu-bf16": True, "cpu-avx2": False}


def seed_figures(seed: int, record: dict, source: str, cpu_train_runs: dict[int, float]) -> dict:
    """One seed's row, from its cpu_search results file (`budget_figures.py search`)."""
    figures = record["figures"]
    if "ensemble_test_gain_over_best_member" not in figures:
        raise SystemExit(f"{source} has no ensemble test figures with their gain interval: rerun cpu_search.sh's "
                         "last two commands (`ensemble --json`, `budget_figures.py search`) on its storage")
    members = figures["members_test_acc_ten_crops"]
    trials = figures["trials"]
    ensemble = figures["ensemble_test_acc_ten_crops"]
    gain = dict(figures["ensemble_test_gain_over_best_member"])
    best_member = gain.pop("member")
    cpu_train = cpu_train_for(seed, cpu_train_runs)
    return {"seed": seed, "results_file": source, "commit": record.get("commit"),
            "epochs": sorted({t["epochs"] for t in trials.values()}),
            "ensemble_val_acc": figures["ensemble_val_acc_ten_crops"], "ensemble_test_acc": ensemble,
            "members_test_acc": members,
            "trials_test_acc_flip": {t: row["test_acc"] for t, row in trials.items()},
            "best_member": best_member, "test_gain_over_best_member": gain,
            "above_every_trial": ensemble > best_single_test_acc(trials, {m: {"test_acc": a}
                                                                          for m, a in members.items()}),
            "cpu_train_seed": None if cpu_train is None else cpu_train[0],
            "cpu_train_test_acc": None if cpu_train is None else cpu_train[1],
            "above_cpu_train": None if cpu_train is None else ensemble > cpu_train[1]}


def seeds_figures(label: str, name: str = "cpu_search") -> dict:
    """The table over every seed of this machine kind's cpu_search results (kept under `name`), and how many seeds
    meet each goal."""
    cpu_train_runs = cpu_train_by_seed(label)
    searches = seeded_results(name, label)
    if not searches:
        raise SystemExit(f"no {name} results for {label} in {results.results_dir()} ({name}-{label}.json, "
                         f"{name}_seedN-{label}.json): run benchmarks/cpu_search.sh first")
    runs = [seed_figures(seed, record, path.name, cpu_train_runs) for seed, (path, record) in sorted(searches.items())]
    goal = ACCURACY_GOAL.get(label)
    whole_goal = None if goal is None or not cpu_train_runs else sum(
        r["ensemble_test_acc"] >= goal and r["above_cpu_train"]
        and (r["above_every_trial"] or not ABOVE_EVERY_TRIAL_GOAL[label]) for r in runs)
    return {"seeds": [r["seed"] for r in runs], "runs": runs, "interval_confidence": CONFIDENCE,
            "cpu_train_test_acc_by_seed": cpu_train_runs,
            "cpu_train_epochs_by_seed": {seed: record["figures"].get("epochs")
                                         for seed, (_, record) in seeded_results("cpu_train", label).items()},
            "median_cpu_train_test_acc": statistics.median(cpu_train_runs.values()) if cpu_train_runs else None,
            "accuracy_goal": goal,
            "median_ensemble_test_acc": statistics.median(r["ensemble_test_acc"] for r in runs),
            "median_test_gain_over_best_member": statistics.median(r["test_gain_over_best_member"]["gain"]
                                                                   for r in runs),
            "seeds_meeting_accuracy_goal": None if goal is None else sum(r["ensemble_test_acc"] >= goal
                                                                         for r in runs),
            "seeds_above_every_trial": sum(r["above_every_trial"] for r in runs),
            "seeds_above_cpu_train": None if not cpu_train_runs else sum(r["above_cpu_train"] for r in runs),
            "seeds_meeting_the_whole_goal": whole_goal,
            "seeds_whose_gain_interval_excludes_0": sum(r["test_gain_over_best_member"]["low"] > 0
                                                        or r["test_gain_over_best_member"]["high"] < 0
                                                        for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", help="the machine kind whose results to read [this machine's]")
    parser.add_argument("--name", default="cpu_search",
                        help="the results name the searches are kept under [cpu_search: cpu_search.sh's own]")
    args = parser.parse_args()
    label = args.label or results.machine_label()
    figures = seeds_figures(label, args.name)
    print(f"{'seed':>4}  {'ensemble test':>13}  {'best member':>11}  {'cpu_train (seed)':>16}"
          "  ensemble - best member [95% interval]")
    for run in figures["runs"]:
        gain = run["test_gain_over_best_member"]
        best = run["members_test_acc"][run["best_member"]]
        train = "-" if run["cpu_train_seed"] is None else f"{run['cpu_train_test_acc']:.4f} ({run['cpu_train_seed']})"
        print(f"{run['seed']:>4}  {run['ensemble_test_acc']:>13.4f}  {best:>11.4f}  {train:>16}"
              f"  {gain['gain']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]")
    for key, value in figures.items():
        if key != "runs":
            print(f"{key}: {value}")
    results.save(f"{args.name}_seeds", figures, label=label)


if __name__ == "__main__":
    main()
