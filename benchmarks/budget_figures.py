"""The figures of the budget benchmarks, from their files, printed and written with results.py:

    python benchmarks/budget_figures.py train OUT_DIR --minutes M --started T0 --trained T1 --test-json FILE
    python benchmarks/budget_figures.py search STORAGE NAME --minutes M --started T0 --searched T1 --ensemble-json FILE
    python benchmarks/budget_figures.py refit STORAGE NAME [--data DATA]

`train` (benchmarks/cpu_train.sh): the plan (OUT_DIR/plan.json) and what ran, the best epoch's validation
accuracy, the ten-crop test accuracy (`evaluate --json`), and the seconds to the end of training and in all.
`search` (benchmarks/cpu_search.sh): the plan and what ran (experiment.json), each trial's best validation
and test accuracy (flip TTA, reported only), the ensemble's (`ensemble --json`, ten crops), whether it beats
every trial and this machine kind's cpu_train figure (benchmarks/results/cpu_train-LABEL.json, if there), and its
test gain over its best member with the paired-bootstrap interval (`ensemble --json`).
`refit` (after cpu_search.sh, on its STORAGE): runs `ensemble --top 3 --tta crops --refit` (the same members,
weights and temperature, each member retrained on train + validation for the epochs validation chose) and
writes the validated and the refit ensemble's test accuracy, and the refit's seconds, to cpu_search_refit-LABEL.json.
Results go to benchmarks/results/cpu_train-LABEL.json and cpu_search-LABEL.json (LABEL: results.machine_label();
a run with `--seed N` other than 0 goes to cpu_train_seedN-LABEL.json or cpu_search_seedN-LABEL.json, beside the
seed-0 figures). A search is compared with the cpu_train.sh run of its own seed (the same validation split, so the
same training images), or with seed 0's where its seed has none.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import results

ENSEMBLE = "ensemble"
REFIT = "ensemble (refit)"  # the refit ensemble's row in `ensemble --json`
REPO = Path(__file__).resolve().parent.parent


def seeded_name(name: str, seed: int) -> str:
    """A benchmark's results name for one seed: NAME for seed 0, NAME_seedN otherwise."""
    return name if seed == 0 else f"{name}_seed{seed}"


def seeded_results(name: str, label: str) -> dict[int, tuple[Path, dict]]:
    """Every seed's results file of one benchmark on one machine kind, by seed: NAME-LABEL.json is seed 0's,
    NAME_seedN-LABEL.json seed N's (seeded_name)."""
    pattern = re.compile(rf"{re.escape(name)}(?:_seed(\d+))?-{re.escape(label)}\.json")
    found = {}
    for path in sorted(results.results_dir().glob(f"{name}*-{label}.json")):
        match = pattern.fullmatch(path.name)
        if match:
            found[int(match.group(1) or 0)] = (path, json.loads(path.read_text()))
    return found


def cpu_train_by_seed(label: str) -> dict[int, float]:
    """cpu_train.sh's ten-crop test accuracy on this machine kind, by seed."""
    return {seed: record["figures"]["test_acc_ten_crops"]
            for seed, (_, record) in seeded_results("cpu_train", label).items()}


def cpu_train_for(seed: int, by_seed: dict[int, float]) -> tuple[int, float] | None:
    """The cpu_train.sh figure a search of `seed` is compared with: its own seed's, else seed 0's, else None."""
    for candidate in (seed, 0):
        if candidate in by_seed:
            return candidate, by_seed[candidate]
    return None


def train_figures(out: Path, minutes: float, started: float, trained: float, test_json: Path) -> dict:
    import torch

    plan = json.loads((out / "plan.json").read_text())
    seed = int(torch.load(out / "model.pt", map_location="cpu", weights_only=True)["config"].get("seed", 0))
    history = list(csv.DictReader(open(out / "metrics.csv")))
    best = max(history, key=lambda row: float(row["val_acc"]))
    test = json.loads(test_json.read_text())
    return {"seed": seed, "minutes": minutes, "layout": plan["layout"], "network": plan["network"],
            "measured_train_images_per_s": round(plan["train_images_per_s"]),
            "measured_eval_images_per_s": round(plan["eval_images_per_s"]),
            "planned_epochs": plan["epochs"], "epochs": len(history), "best_epoch": int(best["epoch"]),
            "val_acc": float(best["val_acc"]), "test_acc_ten_crops": test["accuracy"],
            "test_macro_f1_ten_crops": test["macro_f1"], "planned_training_end_s": round(plan["expected_end"] - started),
            "training_end_s": round(trained - started), "seconds_in_all": round(time.time() - started),
            "within_minutes": trained - started <= minutes * 60}


def gain_figures(member_row: dict) -> dict:
    """The ensemble's test gain over one member with its interval, from that member's row of `ensemble --json`."""
    return {key: member_row[f"test_ensemble_gain{end}"] for key, end in (("gain", ""), ("low", "_low"), ("high", "_high"))}


def best_single_test_acc(trials: dict, members: dict) -> float:
    """The best test accuracy of any single model: a trial's own (flip) or an ensemble member's (ten crops)."""
    return max([t["test_acc"] or 0.0 for t in trials.values()] + [r.get("test_acc") or 0.0 for r in members.values()])


def trial_figures(storage: Path, name: str) -> dict:
    """Each trial of the search: status, epochs run and planned, best validation and test accuracy (flip TTA)."""
    from fer_search.search import layout

    trials = {}
    for trial in layout.list_trials(storage, name):
        summary = trial.summary() or {"metrics": {}}
        trials[trial.name] = {"status": trial.status, "epochs": trial.epochs,
                              "planned_epochs": int(trial.config.get("epochs", 0)),
                              "val_acc": summary["metrics"].get("val_acc"), "test_acc": summary["metrics"].get("test_acc")}
    return trials


def search_figures(storage: Path, name: str, minutes: float, started: float, searched: float,
                   ensemble_json: Path, label: str) -> dict:
    from fer_search.search.record import load_record

    record = load_record(storage / name)
    plan = record.plan or {}
    trials = trial_figures(storage, name)
    scores = json.loads(ensemble_json.read_text())
    members = {model: row for model, row in scores.items() if not model.startswith(ENSEMBLE)}
    ensemble_test = scores[ENSEMBLE].get("test_acc")
    figures = {"search_command": record.command, "seed": record.val_seed, "minutes": minutes,
               "layout": plan.get("layout"), "planned_trials": plan.get("planned_trials"),
               "planned_epochs": plan.get("tpe_epochs"), "trials": trials,
               "every_schedule_finished": all(t["epochs"] >= t["planned_epochs"] for t in trials.values()),
               "search_end_s": round(searched - started), "planned_search_end_s":
               round(plan["expected_end"] - started) if plan else None, "within_minutes": searched - started <= minutes * 60,
               "seconds_in_all": round(time.time() - started),
               "ensemble_members": {m: row["weight"] for m, row in members.items()},
               "ensemble_val_acc_ten_crops": scores[ENSEMBLE]["val_acc"], "ensemble_test_acc_ten_crops": ensemble_test,
               "members_test_acc_ten_crops": {m: row.get("test_acc") for m, row in members.items()}}
    if ensemble_test is not None:
        figures["ensemble_above_every_trial"] = ensemble_test > best_single_test_acc(trials, members)
        best_member = max(members, key=lambda m: members[m]["test_acc"])
        figures["ensemble_test_gain_over_best_member"] = {"member": best_member, **gain_figures(members[best_member])}
        train = cpu_train_for(record.val_seed, cpu_train_by_seed(label))
        if train is None:
            figures["ensemble_above_cpu_train"] = "no cpu_train results for this machine kind yet"
        else:
            figures.update(cpu_train_seed=train[0], cpu_train_test_acc=train[1],
                           ensemble_above_cpu_train=ensemble_test > train[1])
    return figures


def refit_figures(storage: Path, name: str, data: str) -> dict:
    """The search's ensemble again, with --refit: the validated ensemble's and the refit one's test accuracy."""
    from fer_search.search.record import load_record

    out = storage / "ensemble_refit"
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", "fer_search", "ensemble", "--top", "3", "--storage", str(storage), "--name",
                    name, "--data", data, "--tta", "crops", "--refit", "--out", str(out), "--json",
                    str(out / "scores.json")], check=True, cwd=REPO)
    scores = json.loads((out / "scores.json").read_text())
    record = load_record(storage / name)
    members = {model: row["weight"] for model, row in scores.items() if not model.startswith(ENSEMBLE)}
    return {"search_command": record.command if record else None, "ensemble_members": members,
            "ensemble_val_acc_ten_crops": scores[ENSEMBLE]["val_acc"],
            "ensemble_test_acc_ten_crops": scores[ENSEMBLE]["test_acc"],
            "refit_ensemble_test_acc_ten_crops": scores[REFIT]["test_acc"],
            "refit_ensemble_test_macro_f1_ten_crops": scores[REFIT]["test_macro_f1"],
            "seconds_with_refit": round(time.time() - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="what", required=True)
    t = commands.add_parser("train")
    t.add_argument("out", type=Path)
    t.add_argument("--trained", type=float, required=True, help="Unix time training ended")
    t.add_argument("--test-json", type=Path, required=True, help="`evaluate --json` of the test split")
    s = commands.add_parser("search")
    s.add_argument("storage", type=Path)
    s.add_argument("name")
    s.add_argument("--searched", type=float, required=True, help="Unix time the search ended")
    s.add_argument("--ensemble-json", type=Path, required=True, help="`ensemble --json` of the search")
    for p in (t, s):
        p.add_argument("--minutes", type=float, required=True)
        p.add_argument("--started", type=float, required=True, help="Unix time the script started")
    r = commands.add_parser("refit")
    r.add_argument("storage", type=Path)
    r.add_argument("name")
    r.add_argument("--data", default=str(REPO.parent / "shared" / "fer2013"), help="the search's data")
    args = parser.parse_args()
    label = results.machine_label()
    if args.what == "refit":
        figures = refit_figures(args.storage.absolute(), args.name, args.data)
        name = "cpu_search_refit"
    elif args.what == "train":
        figures = train_figures(args.out, args.minutes, args.started, args.trained, args.test_json)
        name = seeded_name("cpu_train", figures["seed"])
    else:
        figures = search_figures(args.storage, args.name, args.minutes, args.started, args.searched,
                                 args.ensemble_json, label)
        name = seeded_name("cpu_search", figures["seed"])
    for key, value in figures.items():
        print(f"{key}: {value}")
    results.save(name, figures, label=label)


if __name__ == "__main__":
    main()
