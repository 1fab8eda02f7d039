"""benchmarks/cpu_search_seeds.py (issue 15): cpu_search.sh's ensemble against its members and cpu_train.sh over
seeds, read from their results files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
SCRIPT = REPO / "benchmarks" / "cpu_search_seeds.py"


def _run(results: Path, label: str, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FER_SEARCH_RESULTS_DIR": str(results)}
    return subprocess.run([sys.executable, str(SCRIPT), "--label", label, *options], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO)


def _search_file(ensemble: float, members: dict, trials: dict, gain: tuple) -> dict:
    """A cpu_search results file as `budget_figures.py search` writes it (the fields the seed table reads)."""
    best = max(members, key=members.get)
    return {"commit": "c0ffee", "figures": {
        "trials": {t: {"epochs": 19, "test_acc": acc} for t, acc in trials.items()},
        "ensemble_val_acc_ten_crops": 0.67, "ensemble_test_acc_ten_crops": ensemble,
        "members_test_acc_ten_crops": members,
        "ensemble_test_gain_over_best_member": {"member": best, **dict(zip(("gain", "low", "high"), gain))}}}


def test_the_seed_table_reads_every_seeds_search_and_cpu_train_of_the_same_seed(tmp_path):
    label = "cpu-bf16"  # a kind with all three goals: >= 65%, above every trial, above cpu_train.sh
    files = {
        # seed 0: meets the whole goal against its own cpu_train.sh (0.645)
        "cpu_search": _search_file(0.66, {"m/a": 0.655, "m/b": 0.64}, {"a": 0.65, "b": 0.64}, (0.005, 0.001, 0.01)),
        # seed 1: >= 65% and above its members, but a trial's flip figure beats it; no cpu_train of seed 1
        "cpu_search_seed1": _search_file(0.652, {"m/a": 0.651}, {"a": 0.653}, (0.001, -0.004, 0.006)),
        # seed 2: under 65% and under its own cpu_train.sh (0.649)
        "cpu_search_seed2": _search_file(0.648, {"m/a": 0.646, "m/b": 0.64}, {"a": 0.645, "b": 0.64},
                                         (0.002, -0.003, 0.007)),
        "cpu_train": {"figures": {"test_acc_ten_crops": 0.645}},  # recorded before seeds were: seed 0
        "cpu_train_seed2": {"figures": {"seed": 2, "test_acc_ten_crops": 0.649, "epochs": 23}},
        "cpu_search_refit": {"figures": {}},  # other benchmarks' files beside them are not seeds
        "cpu_search_seeds": {"figures": {}},
    }
    for name, record in files.items():
        (tmp_path / f"{name}-{label}.json").write_text(json.dumps(record))
    (tmp_path / "cpu_search_seed3-cpu-avx2.json").write_text(json.dumps(files["cpu_search"]))  # another kind

    done = _run(tmp_path, label)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / f"cpu_search_seeds-{label}.json").read_text())["figures"]
    assert figures["seeds"] == [0, 1, 2]
    rows = {run["seed"]: run for run in figures["runs"]}
    assert [rows[s]["cpu_train_seed"] for s in (0, 1, 2)] == [0, 0, 2]
    assert [rows[s]["above_cpu_train"] for s in (0, 1, 2)] == [True, True, False]
    assert [rows[s]["above_every_trial"] for s in (0, 1, 2)] == [True, False, True]
    assert rows[0]["best_member"] == "m/a" and rows[0]["test_gain_over_best_member"] == {
        "gain": 0.005, "low": 0.001, "high": 0.01}
    assert figures["cpu_train_test_acc_by_seed"] == {"0": 0.645, "2": 0.649}
    assert figures["cpu_train_epochs_by_seed"] == {"0": None, "2": 23}
    assert figures["median_ensemble_test_acc"] == 0.652
    assert (figures["seeds_meeting_accuracy_goal"], figures["seeds_above_every_trial"],
            figures["seeds_above_cpu_train"], figures["seeds_meeting_the_whole_goal"],
            figures["seeds_whose_gain_interval_excludes_0"]) == (2, 2, 2, 1, 1)
    assert "   0         0.6600       0.6550        0.6450 (0)  +0.0050 [+0.0010, +0.0100]" in done.stdout

    del files["cpu_search_seed1"]["figures"]["ensemble_test_gain_over_best_member"]  # an older file: told what to do
    (tmp_path / f"cpu_search_seed1-{label}.json").write_text(json.dumps(files["cpu_search_seed1"]))
    done = _run(tmp_path, label)
    assert done.returncode != 0 and f"cpu_search_seed1-{label}.json has no ensemble test figures" in done.stderr

    done = _run(tmp_path / "empty", label)
    assert done.returncode != 0 and "no cpu_search results for cpu-bf16" in done.stderr


def test_name_reads_the_searches_kept_under_another_name(tmp_path):
    label = "cpu-avx2"  # >= 62.5% and above cpu_train.sh; "above every trial" is not part of this kind's goal
    earlier = _search_file(0.63, {"m/a": 0.628}, {"a": 0.628}, (0.002, -0.004, 0.008))
    current = _search_file(0.64, {"m/a": 0.635}, {"a": 0.635}, (0.005, -0.001, 0.011))
    files = {"cpu_search_earlier_plan": earlier, "cpu_search_earlier_plan_seed1": earlier, "cpu_search": current,
             "cpu_train": {"figures": {"test_acc_ten_crops": 0.632}}}
    for name, record in files.items():
        (tmp_path / f"{name}-{label}.json").write_text(json.dumps(record))

    done = _run(tmp_path, label)  # cpu_search.sh's own name: the earlier plan's files are not its seeds
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / f"cpu_search_seeds-{label}.json").read_text())["figures"]
    assert figures["seeds"] == [0] and figures["seeds_meeting_the_whole_goal"] == 1

    done = _run(tmp_path, label, "--name", "cpu_search_earlier_plan")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / f"cpu_search_earlier_plan_seeds-{label}.json").read_text())["figures"]
    assert figures["seeds"] == [0, 1] and figures["seeds_meeting_the_whole_goal"] == 0  # 0.63 is under 0.632
    assert [run["results_file"] for run in figures["runs"]] == [
        f"cpu_search_earlier_plan-{label}.json", f"cpu_search_earlier_plan_seed1-{label}.json"]

    done = _run(tmp_path, label, "--name", "cpu_search_other")
    assert done.returncode != 0 and "no cpu_search_other results for cpu-avx2" in done.stderr


def test_a_search_is_compared_with_cpu_train_of_its_own_seed_else_seed_0(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.setenv("FER_SEARCH_RESULTS_DIR", str(tmp_path))
    import budget_figures

    for name, figures in (("cpu_train", {"test_acc_ten_crops": 0.64}),  # recorded before seeds were: seed 0
                          ("cpu_train_seed2", {"seed": 2, "test_acc_ten_crops": 0.66})):
        (tmp_path / f"{name}-cpu-x.json").write_text(json.dumps({"figures": figures}))
    (tmp_path / "cpu_train-cpu-y.json").write_text(json.dumps({"figures": {"test_acc_ten_crops": 0.5}}))
    runs = budget_figures.cpu_train_by_seed("cpu-x")
    assert runs == {0: 0.64, 2: 0.66}
    assert budget_figures.cpu_train_for(2, runs) == (2, 0.66)
    assert budget_figures.cpu_train_for(1, runs) == (0, 0.64)
    assert budget_figures.cpu_train_for(1, {}) is None
    assert [budget_figures.seeded_name("cpu_train", seed) for seed in (0, 3)] == ["cpu_train", "cpu_train_seed3"]
