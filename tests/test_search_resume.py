"""`run --resume` after the driver is killed mid-search (SIGKILL: no chance to clean up)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fer_search.search import layout
from fer_search.search.settings import local_cpu_count
from fer_search.search.study import load_study

SPACES = Path(__file__).parent / "spaces"
ENDED = (layout.COMPLETED, layout.STOPPED)


def _saved_as_ended(experiment: Path) -> set[str]:
    """Trial names that Ray's own experiment state (what --resume restores) records as ended."""
    names = set()
    for state in experiment.glob("experiment_state-*.json"):
        try:
            trials = json.loads(state.read_text())["trial_data"]
        except (json.JSONDecodeError, KeyError):
            continue  # caught mid-write
        for trial_json, _ in trials:
            trial = json.loads(trial_json)
            if trial["status"] == "TERMINATED":
                names.add(trial["relative_logdir"])
    return names


def test_resume_after_the_driver_is_killed(tmp_path):
    storage, name = tmp_path / "runs", "resume"
    command = [sys.executable, "-m", "fer_search", "run", "--space", str(SPACES / "tiny_simple_cnn.yaml"),
               "--space", str(SPACES / "tiny_deeper_cnn.yaml"), "--data", "synthetic", "--storage", str(storage),
               "--name", name, "--num-samples", "6", "--max-epochs", "3", "--grace-period", "1",
               "--reduction-factor", "2", "--max-train-images", "512", "--cpus", str(min(2, local_cpu_count()))]
    with open(tmp_path / "first.log", "w") as log:
        # Its own session: killing the group takes Ray's processes down with the driver.
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while len(_saved_as_ended(storage / name)) < 2 and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    ended = _saved_as_ended(storage / name)
    before = {t.name: (t.status, t.epochs, t.summary()["metrics"]) for t in layout.list_trials(storage, name)
              if t.name in ended}
    assert 2 <= len(before) < 6 and all(status in ENDED for status, _, _ in before.values())

    rerun = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "tensorboard --logdir" in rerun.stdout
    after = layout.list_trials(storage, name)
    assert len({t.number for t in after}) == len(after) == 6  # the total reaches --num-samples, no trial twice
    # A trial the killed driver had started after Ray last saved its state is lost with it: FAIL in the study
    # (so its number is not reused), never left RUNNING; the study holds every trial that ran.
    in_study = {t.number: t.state.name for t in load_study(storage / name).trials}
    assert "RUNNING" not in in_study.values()
    assert {number for number, state in in_study.items() if state != "FAIL"} == {t.number for t in after}
    assert all(t.status in ENDED and t.model_path and t.probs_path for t in after)
    for trial in after:
        if trial.name in before:  # ended before the kill: kept as it was, not run again
            assert (trial.status, trial.epochs, trial.summary()["metrics"]) == before[trial.name]
