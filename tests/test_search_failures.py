"""A search left alone: a trial that raises, one that diverges, and a time budget that runs out.
Every trial must end in a state that Optuna, the console, the files and the analysis agree on."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from fer_search.cli import main
from fer_search.search import layout

SPACES = Path(__file__).parent / "spaces"


def _spend_the_budget_once_running(storage: Path, name: str, stop: threading.Event, seen: dict) -> None:
    """The budget runs out (the session's deadline is moved to now) once the good trial has trained two
    epochs and the other two have failed: a fixed point in the search, whatever the machine's speed.
    Meanwhile it notes the addresses Ray's nodes listen on."""
    import ray

    from fer_search.search import session

    deadline = time.monotonic() + 900
    while not stop.is_set() and time.monotonic() < deadline:
        if ray.is_initialized():
            seen["addresses"] = {node["NodeManagerAddress"] for node in ray.nodes()}
        trials = {t.point: t for t in layout.list_trials(storage, name)} if (storage / name).is_dir() else {}
        if ({"broken", "diverge", "good"} <= set(trials) and trials["good"].epochs >= 2
                and trials["broken"].status == layout.ERRORED and trials["diverge"].status == layout.DIVERGED):
            break
        time.sleep(0.5)
    session.current.deadline = time.time()


def test_failed_trials_and_a_spent_budget_end_every_trial_consistently(tmp_path, capsys, monkeypatch):
    from ray._private import ray_constants

    from fer_search.search.study import load_study

    # As after `ray start --head` on a Linux machine: RAY_ADDRESS names a cluster (here one that is not
    # there), and Ray's default would bind to the machine's network address. Local mode ignores both.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    storage, name, seen = tmp_path / "runs", "left_alone", {}
    stop = threading.Event()
    watcher = threading.Thread(target=_spend_the_budget_once_running, args=(storage, name, stop, seen), daemon=True)
    watcher.start()
    try:
        code = main(["run", "--space", str(SPACES / "tiny_failing.yaml"), "--data", "synthetic", "--storage",
                     str(storage), "--name", name, "--num-samples", "6", "--max-epochs", "200", "--grace-period",
                     "200", "--max-train-images", "256", "--cpus", "2", "--time-budget", "60", "--retries", "1"])
    finally:
        stop.set()
        watcher.join()
    out = capsys.readouterr().out
    assert code == 0, out
    assert seen["addresses"] == {"127.0.0.1"}

    trials = {t.point: t for t in layout.list_trials(storage, name)}
    assert trials["broken"].status == layout.ERRORED
    assert trials["diverge"].status == layout.DIVERGED and trials["diverge"].epochs == 1
    assert trials["good"].status == layout.STOPPED and 2 <= trials["good"].epochs < 200
    assert len(trials) < 6  # the spent budget started no new trial
    for trial in trials.values():
        assert trial.status != layout.RUNNING, trial.name
        if trial.status != layout.ERRORED:
            assert trial.last_result["done"] is True, trial.name  # result.json says the trial ended

    # Optuna agrees: the failures FAIL, the budget's stops are PRUNED, nothing stays RUNNING.
    study = load_study(storage / name)
    expected = {layout.ERRORED: "FAIL", layout.DIVERGED: "FAIL", layout.STOPPED: "PRUNED", layout.COMPLETED: "COMPLETE"}
    assert {t.number: t.state.name for t in study.trials} == {t.number: expected[t.status] for t in trials.values()}

    # The console: each end as it happens, the real error with its log, the failures named in the summary.
    broken, diverge, good = trials["broken"].name, trials["diverge"].name, trials["good"].name
    assert f"ERROR  {broken}: UserError: pretrained weights file not found: /nonexistent/weights.pt" in out
    assert f"full log: {trials['broken'].path}/error.txt" in out
    assert f"retry  {broken} from its last checkpoint: UserError: pretrained weights file not found" in out
    assert f"FAILED {diverge}: diverged in epoch 1 (train loss nan)" in out
    assert f"end    {good}: stopped by the time budget at epoch" in out
    assert f"failed:      {broken}: UserError: pretrained weights file not found" in out
    assert f"failed:      {diverge}: diverged in epoch 1" in out
    assert "the time budget (60 min) ran out" in out
    assert "--resume --time-budget 60" in out

    # The best epochs of the trials the budget stopped are usable.
    assert main(["ensemble", "--top", "1", "--storage", str(storage), "--out", str(tmp_path / "ens")]) == 0
    out = capsys.readouterr().out
    assert any(f"{name}/{t.name}" in out for t in trials.values() if t.status == layout.STOPPED)


def test_ray_warnings_go_to_the_experiments_log_and_the_actionable_ones_to_the_console(tmp_path):
    import logging

    from fer_search.search.ray_console import RAY_LOG_FILE, route_logs

    log_file = route_logs(str(tmp_path / "exp"))
    try:
        tune_logger = logging.getLogger("ray.tune")
        messages = ["Trial task failed for trial 003_resnet_tpe",
                    "Experiment state snapshotting has been triggered multiple times (checkpoints, sync)",
                    "Failed to sync the experiment to storage s3://b",
                    "Ignore this trial's resources: it cannot be scheduled on any node (infeasible)"]
        for message in messages:
            tune_logger.warning(message)
        log_file.flush()
        assert all(m in (tmp_path / "exp" / RAY_LOG_FILE).read_text() for m in messages)
        console = next(h for h in logging.getLogger("ray").handlers if h is not log_file)
        shown = [m for m in messages
                 if console.filter(logging.LogRecord("ray.tune", logging.WARNING, "", 0, m, None, None))]
        # A failed trial is the reporter's to show, with its real error; snapshots that come too often are the
        # user's to space out (--checkpoint-every).
        assert shown == messages[1:]
    finally:
        logging.getLogger("ray").removeHandler(log_file)
        log_file.close()
