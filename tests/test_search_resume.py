"""`run --resume`: after the driver is killed mid-search (SIGKILL: no chance to clean up), and what it
refuses or rebuilds (the experiment record, ASHA's rungs, errored trials told to TPE)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_search.cli import main
from fer_search.search import layout
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


def _trials(experiment: Path) -> list[layout.Trial]:
    return layout.list_trials(experiment.parent, experiment.name) if experiment.is_dir() else []


# The five moments a driver is killed at, each a test of the experiment folder and the driver's log
# (its console: one line per trial start and end). Trial files reach the storage folder only when Ray
# copies them there, so the console says first what is going on.
def _loading_data(experiment: Path, log: str, checkpoints_before: set[Path]) -> bool:
    """`--resume` found nothing started and said so; the data is loading (it prints "data:" when done)."""
    return "starting it" in log and "data:" not in log


def _first_epoch_of_first_trial(experiment: Path, log: str, checkpoints_before: set[Path]) -> bool:
    return "] start  000_" in log and "] best " not in log and "] end " not in log


def _between_two_trials(experiment: Path, log: str, checkpoints_before: set[Path]) -> bool:
    """A trial has just ended, and no other has reported since."""
    events = [line.split("] ", 1)[1] for line in log.splitlines() if line.startswith("[")]
    return bool(events) and events[-1].startswith("end ")


def _writing_a_checkpoint(experiment: Path, log: str, checkpoints_before: set[Path]) -> bool:
    """A checkpoint folder has appeared that was not there before: Ray is copying it into place."""
    return bool(set(experiment.glob("*/checkpoint_*")) - checkpoints_before)


def _gathering_results(experiment: Path, log: str, checkpoints_before: set[Path]) -> bool:
    """The last trial has ended; the driver is saving its state, stopping Ray, printing the outcome."""
    return "0 running, 3/3 ended" in log


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_at_five_points(tmp_path):
    """SIGKILL at each of five moments, then `run --resume`: what had ended stays as it was, the search
    ends with every requested trial (and one more, asked for by the last resume), and `ensemble` works."""
    storage, name = tmp_path / "runs", "resume"
    experiment = storage / name
    command = [sys.executable, "-m", "fer_search", "run", "--space", str(SPACES / "tiny_simple_cnn.yaml"),
               "--data", "synthetic", "--storage", str(storage), "--name", name, "--num-samples", "3",
               "--max-epochs", "3", "--grace-period", "3", "--max-train-images", "2048", "--cpus", "1", "--resume"]
    ended: dict[str, tuple] = {}  # trial name -> (status, epochs, metrics) when first seen ended
    for attempt, moment in enumerate((_loading_data, _first_epoch_of_first_trial, _between_two_trials,
                                      _writing_a_checkpoint, _gathering_results)):
        checkpoints_before = set(experiment.glob("*/checkpoint_*"))
        log = tmp_path / f"run{attempt}.log"
        with open(log, "w") as out:
            # Its own session: killing the group takes Ray's processes down with the driver.
            driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + 600
                while (driver.poll() is None and time.monotonic() < deadline
                       and not moment(experiment, log.read_text(), checkpoints_before)):
                    time.sleep(0.05)
            finally:
                if driver.poll() is None:
                    os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
        assert driver.returncode == -signal.SIGKILL, f"{moment.__name__}: the driver ended first\n{log.read_text()}"
        for trial in _trials(experiment):
            if trial.name in _saved_as_ended(experiment) and trial.name not in ended:
                ended[trial.name] = (trial.status, trial.epochs, trial.summary()["metrics"])

    # The last resume also asks for one trial more: a finished search extends where its study was.
    rerun = subprocess.run(command + ["--num-samples", "4"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "4 trials in all" in rerun.stdout
    after = layout.list_trials(storage, name)
    assert len({t.number for t in after}) == len(after) == 4  # every requested trial, none twice
    # A trial a killed driver had started after Ray last saved its state is lost with it: FAIL in the study
    # (so its number is not reused), never left RUNNING; the study holds every trial that ran.
    in_study = {t.number: t.state.name for t in load_study(experiment).trials}
    assert "RUNNING" not in in_study.values()
    assert {number for number, state in in_study.items() if state != "FAIL"} == {t.number for t in after}
    assert all(t.status in ENDED and t.model_path and t.probs_path for t in after)
    for trial in after:
        if trial.name in ended:  # ended before a kill: kept as it was, not run again
            assert (trial.status, trial.epochs, trial.summary()["metrics"]) == ended[trial.name], trial.name
    assert main(["ensemble", "--top", "2", "--storage", str(storage), "--out", str(tmp_path / "ensemble")]) == 0


def _recorded_experiment(storage: Path, name: str, **changes) -> Path:
    """An experiment folder as a search leaves it for --resume: Ray's tuner.pkl and our record (of
    `run simple_cnn --data synthetic`), without running one."""
    from fer_search.data import load_data
    from fer_search.search.record import ExperimentRecord, fingerprint, val_ids_hash

    data = load_data("synthetic", progress=False)
    experiment = storage / name
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"")
    values = dict(families=["simple_cnn"], space_files=[], data="synthetic", data_fingerprint=fingerprint(data),
                  val_seed=0, val_fraction=0.1, val_ids_hash=val_ids_hash(data), keep_test_copies=False,
                  metric="val_acc", max_epochs=3, num_samples=4, command=["run", "simple_cnn"])
    ExperimentRecord(**{**values, **changes}).save(experiment)
    return experiment


@pytest.mark.parametrize("changes, argv, message", [
    ({}, ["resnet"], "--resume: this experiment searched simple_cnn; leave FAMILY and --space out"),
    ({}, ["--seed", "3"], "--resume: --seed 3 would carve another validation split than the experiment's (seed 0)"),
    ({}, ["--num-samples", "2"], "--resume: --num-samples 2 is fewer than the experiment's 4"),
    ({"data_fingerprint": "0" * 64}, [], "--resume: the data at synthetic differs from the data this experiment"),
    ({"val_ids_hash": "0" * 64}, [], "--resume: the validation split differs from the experiment's (seed 0"),
])
def test_resume_refuses_another_search_or_other_data(tmp_path, capsys, changes, argv, message):
    _recorded_experiment(tmp_path, "exp", **changes)
    assert main(["run", *argv, "--storage", str(tmp_path), "--name", "exp", "--resume"]) == 2
    assert message in capsys.readouterr().err


def test_a_new_search_under_an_existing_name_is_refused_before_its_record_changes(tmp_path, capsys):
    experiment = _recorded_experiment(tmp_path, "exp")
    recorded = (experiment / "experiment.json").read_text()
    assert main(["run", "simple_cnn", "--data", "synthetic", "--storage", str(tmp_path), "--name", "exp"]) == 2
    assert f"experiment {experiment} exists already; add --resume" in capsys.readouterr().err
    assert (experiment / "experiment.json").read_text() == recorded


def test_rung_history_survives_a_resume(tmp_path):
    """Tune adds the restored trials back to a fresh scheduler: their recorded results must fill the rungs,
    so a new trial that scores below them at the first rung is stopped."""
    from types import SimpleNamespace

    from pyarrow.fs import LocalFileSystem
    from ray.tune.schedulers import TrialScheduler

    from fer_search.search.ray_tune import RungHistoryASHA

    def trial(name: str, values: list[float]) -> SimpleNamespace:
        directory = tmp_path / name
        directory.mkdir()
        lines = [json.dumps({"training_iteration": i + 1, "best_val_acc": v}) for i, v in enumerate(values)]
        (directory / "result.json").write_text("\n".join(lines) + "\n")
        return SimpleNamespace(trial_id=name, path=str(directory), relative_logdir=name,
                               storage=SimpleNamespace(storage_filesystem=LocalFileSystem()))

    scheduler = RungHistoryASHA(set(), time_attr="training_iteration", metric="best_val_acc", mode="max", max_t=9,
                                grace_period=1, reduction_factor=3)
    for name, values in (("a", [0.5, 0.6, 0.7]), ("b", [0.4, 0.5, 0.6]), ("c", [0.45, 0.5, 0.5])):
        scheduler.on_trial_add(None, trial(name, values))
    rungs = {milestone: recorded for milestone, recorded in scheduler._brackets[0]._rungs}
    assert rungs[1] == {"a": 0.5, "b": 0.4, "c": 0.45} and rungs[3] == {"a": 0.7, "b": 0.6, "c": 0.5}
    # A trial Tune creates now: no directory yet.
    new = SimpleNamespace(trial_id="new", relative_logdir=None, config={"family": "simple_cnn", "point": "tpe"})
    scheduler.on_trial_add(None, new)
    assert scheduler.on_trial_result(None, new, {"training_iteration": 1, "best_val_acc": 0.3}) == TrialScheduler.STOP


def test_an_errored_trial_that_a_resume_finishes_reaches_tpe(tmp_path):
    from fer_search.search.layout import FINISHED_KEY
    from fer_search.search.ray_tune import TruthfulOptunaSearch
    from fer_search.search.sampler import SpaceSampler
    from fer_search.search.study import default_location
    from search_spaces import load_space

    sampler = SpaceSampler([load_space(str(SPACES / "tiny_simple_cnn.yaml"))], {"epochs": 3})
    (tmp_path / "exp").mkdir()
    searcher = TruthfulOptunaSearch(sampler, metric="best_val_acc", seed=0,
                                    location=default_location(str(tmp_path), "exp"), experiment="exp")
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", error=True)  # the first session: it errored
    searcher.on_trial_result("t1", {"best_val_acc": 0.4, "training_iteration": 2})  # resumed, runs on
    searcher.on_trial_complete("t1", {"best_val_acc": 0.55, "training_iteration": 3, FINISHED_KEY: "max_epochs"})
    failed = searcher._ot_study.trials[0]
    [learned] = [t for t in searcher._ot_study.trials if t.state.name == "COMPLETE"]
    assert failed.state.name == "FAIL" and learned.value == 0.55
    assert learned.params == failed.params and learned.user_attrs["point"] == config["point"]


def test_resume_warns_about_options_the_restored_search_keeps(tmp_path, capsys, monkeypatch):
    _recorded_experiment(tmp_path, "exp")
    monkeypatch.setattr("fer_search.search.ray_tune.run_search", lambda *args, **kwargs: None)  # no search
    monkeypatch.setattr("fer_search.search.ray_tune.budget_ran_out", lambda: False)  # (so no earlier search's)
    code = main(["run", "--storage", str(tmp_path), "--name", "exp", "--resume", "--max-epochs", "9", "--metric",
                 "val_macro_f1", "--num-samples", "6"])
    assert code == 1  # no trial ran: the outcome says so
    captured = capsys.readouterr()
    assert ("warning: --resume keeps the experiment's own settings; ignoring --max-epochs, --metric"
            in captured.err)
    assert "resuming" in captured.out and "6 trials in all" in captured.out
    assert json.loads((tmp_path / "exp" / "experiment.json").read_text())["num_samples"] == 6
