"""A search under real conditions: a trial whose worker and then driver are killed mid-run (SIGKILL), retried and
restored, and a time budget that runs out while trials wait for resources."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from fer_search.cli import main
from fer_search.search import layout

SPACES = Path(__file__).parent / "spaces"


def _watch(until, stop: threading.Event, timeout_s: float = 600) -> None:
    """Call until() twice a second until it returns True (or the search ends)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline and not until():
        time.sleep(0.5)


def _run_watched(argv: list[str], until) -> int:
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(until, stop), daemon=True)
    watcher.start()
    try:
        return main(argv)
    finally:
        stop.set()
        watcher.join()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6)
    return a == b


def _wait_for(condition, process: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"the search ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_progress_csv_stays_aligned_after_a_retry_and_a_restore(tmp_path, capsys, monkeypatch):
    """The trial's worker is killed (Ray retries it from its checkpoint), then the driver (`run --resume` restores
    it). Every row of progress.csv must say what its result.json line says, column by column: Ray's CSV logger,
    on a restored trial, took its columns from the first new result (one without test_*: not a best epoch) and
    wrote later values under other columns' names."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as a shell may set it: Ray then leaves it to the trial's torch
    storage, name = tmp_path / "runs", "retried"
    command = ["run", "--space", str(SPACES / "tiny_flat.yaml"), "--data", "synthetic", "--storage", str(storage),
               "--name", name, "--num-samples", "1", "--max-epochs", "40", "--grace-period", "40",
               "--max-train-images", "1024", "--cpus", "1", "--retries", "2"]

    def results() -> list[dict]:
        trials = layout.list_trials(storage, name) if (storage / name).is_dir() else []
        return trials[0].results if trials else []

    with open(tmp_path / "driver.log", "w") as log:
        # Its own session: killing the group takes Ray's processes down with the driver.
        driver = subprocess.Popen([sys.executable, "-m", "fer_search", *command], stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # Ray copies results to storage every ~10 s: act on a trial that is still training.
            _wait_for(lambda: 3 <= len(results()) <= 25, driver, "three epochs")
            first_worker = results()[-1]["pid"]
            os.kill(first_worker, signal.SIGKILL)
            _wait_for(lambda: len({r["pid"] for r in results()}) == 2, driver, "a retried worker's epoch")
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    killed_session = {r["pid"] for r in results()}
    assert "retry  000_simple_cnn_flat from its last checkpoint" in (tmp_path / "driver.log").read_text()

    assert main(command + ["--resume"]) == 0, capsys.readouterr().out
    [trial] = layout.list_trials(storage, name)
    assert trial.status == layout.COMPLETED and trial.epochs == 40
    assert len({r["pid"] for r in trial.results}) == 3  # the killed worker, its retry, and the resumed one
    # Rows by (epoch, worker): Ray copies the two files to storage one after the other, so a driver killed in
    # between leaves progress.csv ahead by the results of one copy interval (more than one on a busy machine),
    # all from the killed session's workers.
    results = {(r["training_iteration"], r["pid"]): r for r in trial.results}
    rows = pd.read_csv(trial.path / "progress.csv").to_dict("records")
    matched = [(row, results[key]) for row in rows if (key := (row["training_iteration"], row["pid"])) in results]
    ahead = [row for row in rows if (row["training_iteration"], row["pid"]) not in results]
    assert len(matched) == len(results) and all(row["pid"] in killed_session for row in ahead), ahead
    for row, result in matched:
        for key in ("epoch", "val_acc", "test_acc", "best_val_acc", "epoch_seconds", "images_per_s"):
            assert _same(float(row[key]), float(result.get(key, "nan"))), (key, row, result)
    # Every epoch reports the same keys (but the marker of the last one; Ray adds should_checkpoint to some).
    ours = [set(r) - {"done", "finished_by", "should_checkpoint"} for r in trial.results]
    assert all(keys == ours[0] for keys in ours) and "test_acc" in ours[0]
    # The trial went on from its checkpoints and kept its best epoch's files.
    assert trial.summary()["best_epoch"] == 1 and trial.model_path.is_file()
    # Torch's threads followed the trial's CPU share (1), not the environment's OMP_NUM_THREADS.
    assert {r["cpu_threads"] for r in trial.results} == {1}


@pytest.mark.slow
def test_a_spent_budget_starts_no_waiting_trial(tmp_path, capsys, monkeypatch):
    """Three trials planned at once on one CPU (as when families with different GPU shares plan more trials than
    fit): two wait. Once the budget is spent they end without starting: no epoch, no files, FAIL in the study
    (never run: nothing for TPE to learn), and "not started" in the console and the outcome."""
    from fer_search.search import ray_tune, session
    from fer_search.search.study import load_study

    planned = ray_tune.plan_resources
    monkeypatch.setattr(ray_tune, "plan_resources",
                        lambda *args, **kwargs: dataclasses.replace(planned(*args, **kwargs), concurrency=3))
    storage, name = tmp_path / "runs", "budget"

    def spend_the_budget_once_a_trial_trained() -> bool:
        trials = layout.list_trials(storage, name) if (storage / name).is_dir() else []
        if trials and trials[0].epochs >= 1:
            session.current.deadline = time.time()
            return True
        return False

    code = _run_watched(["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic",
                         "--storage", str(storage), "--name", name, "--num-samples", "3", "--max-epochs", "100",
                         "--grace-period", "100", "--max-train-images", "128", "--cpus", "1", "--time-budget", "60"],
                        spend_the_budget_once_a_trial_trained)
    out = capsys.readouterr().out
    assert code == 0, out
    trials = layout.list_trials(storage, name)
    assert [t.name for t in trials] == ["000_simple_cnn_good"], out  # only the trial that was running has files
    [trial] = trials
    assert trial.status == layout.STOPPED and trial.epochs < 100
    assert "1 stopped early, 2 not started (of 3 trials)" in out
    assert out.count("not started (the time budget ran out)") == 2
    states = {t.number: t.state.name for t in load_study(storage / name).trials}
    assert states == {0: "PRUNED", 1: "FAIL", 2: "FAIL"}
    assert json.loads((storage / name / "experiment.json").read_text())["num_samples"] == 3
