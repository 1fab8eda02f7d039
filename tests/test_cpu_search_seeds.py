"""benchmarks/cpu_search_seeds.py (issue 15): cpu_search.sh's ensemble against its members and cpu_train.sh over
seeds, read from each run's storage."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fer_search.cli import main

REPO = Path(__file__).parent.parent
SCRIPT = REPO / "benchmarks" / "cpu_search_seeds.py"


def _run(storage: Path, name: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FER_SEARCH_RESULTS_DIR": str(results)}
    return subprocess.run([sys.executable, str(SCRIPT), str(storage), "--name", name], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO)


def test_the_seed_table_reads_the_ensemble_its_members_and_cpu_train(tiny_search, tmp_path):
    source, name = tiny_search
    storage = tmp_path / "run"
    shutil.copytree(source, storage)
    scores_file = storage / "ensemble" / "scores.json"
    assert main(["ensemble", "--storage", str(storage), "--name", name, "--top", "2", "--out",
                 str(storage / "ensemble"), "--json", str(scores_file)]) == 0
    label = subprocess.run([sys.executable, "-c", "import results; print(results.machine_label())"], text=True,
                           capture_output=True, cwd=REPO / "benchmarks", check=True).stdout.strip()
    results = tmp_path / "results"
    results.mkdir()
    scores = json.loads(scores_file.read_text())
    cpu_train = scores["ensemble"]["test_acc"] - 0.01  # a cpu_train.sh figure the ensemble beats
    (results / f"cpu_train-{label}.json").write_text(json.dumps({"figures": {"test_acc_ten_crops": cpu_train}}))

    done = _run(storage, name, results)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((results / f"cpu_search_seeds-{label}.json").read_text())["figures"]
    (run,) = figures["runs"]
    members = {m: row for m, row in scores.items() if not m.startswith("ensemble")}
    best = max(members, key=lambda m: members[m]["test_acc"])
    assert run["seed"] == 0 and run["best_member"] == best
    gain = run["test_gain_over_best_member"]
    assert gain["gain"] == scores["ensemble"]["test_acc"] - members[best]["test_acc"]
    assert gain["low"] <= gain["gain"] <= gain["high"]
    assert run["above_cpu_train"] is True and figures["seeds_above_cpu_train"] == 1
    if figures["accuracy_goal"] is not None:  # a machine kind with goals (cpu-bf16, cpu-avx2)
        met = run["ensemble_test_acc"] >= figures["accuracy_goal"] and (
            run["above_every_trial"] or label == "cpu-avx2")
        assert figures["seeds_meeting_the_whole_goal"] == int(met)
    trials_best = max(run["trials_test_acc_flip"].values())
    assert run["above_every_trial"] == (run["ensemble_test_acc"] > max(trials_best, members[best]["test_acc"]))
    assert f"   0  {run['ensemble_test_acc']:>13.4f}" in done.stdout

    for row in members.values():  # scores written before the intervals existed: told what to rerun
        del row["test_ensemble_gain"]
    scores_file.write_text(json.dumps(scores))
    done = _run(storage, name, results)
    assert done.returncode != 0 and "has no gain intervals: rerun its `ensemble --json`" in done.stderr
