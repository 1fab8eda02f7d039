"""The study in a database: where a search keeps it, optuna-dashboard on it, continuing it, comparing studies,
parameter importance."""
from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from analysis import studies
from fer_search.cli import main
from fer_search.search import layout, study
from fer_search.search.settings import local_cpu_count

SPACES = Path(__file__).parent / "spaces"
TINY_SPACES = ["--space", str(SPACES / "tiny_simple_cnn.yaml"), "--space", str(SPACES / "tiny_deeper_cnn.yaml")]


def test_the_search_keeps_its_study_in_the_experiment_database(tiny_search):
    experiment = Path(*tiny_search)  # started from Python, so without a record: its own study.db, named after it
    assert study.find(experiment) == study.StudyLocation(study.sqlite_url(experiment / study.STUDY_DB), "tiny")
    loaded = study.load_study(experiment)
    assert (experiment / study.STUDY_DB).is_file() and loaded.study_name == "tiny"
    assert [t.number for t in loaded.trials] == list(range(6))
    assert {t.user_attrs["experiment"] for t in loaded.trials} == {"tiny"}
    assert loaded.user_attrs == {"families": ["simple_cnn", "deeper_cnn"], "objective": "best_val_acc"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url: str, attempts: int):
    """GET url as JSON, retrying while the server starts (bounded); the last failure is raised."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


@pytest.mark.slow
def test_dashboard_serves_the_study_on_loopback(tiny_search, tmp_path):
    storage, name = tiny_search
    port = _free_port()
    with open(tmp_path / "dashboard.log", "w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "fer_search", "dashboard", name, "--storage", storage,
                                   "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            listed = _get_json(f"http://127.0.0.1:{port}/api/studies", attempts=120)["study_summaries"]
            assert [s["study_name"] for s in listed] == [name]
            detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{listed[0]['study_id']}", attempts=3)
            assert len(detail["trials"]) == 6
        finally:
            server.terminate()
            server.wait(timeout=60)
        log.seek(0)
        printed = log.read()
    assert f"http://127.0.0.1:{port}/dashboard/" in printed
    assert f"tensorboard --logdir {storage}/{name} --host 127.0.0.1" in printed


@pytest.mark.slow
def test_a_later_run_continues_the_study_and_leaderboard_compares_studies(tiny_search, tmp_path, capsys):
    storage = tmp_path / "runs"
    shutil.copytree(tiny_search[0], storage)  # a private copy: this test adds trials to the study
    assert main(["run", *TINY_SPACES, "--data", "synthetic", "--storage", str(storage), "--name", "more",
                 "--continue-study", "tiny", "--num-samples", "2", "--max-epochs", "1", "--max-train-images", "256",
                 "--cpus", str(min(2, local_cpu_count()))]) == 0
    assert "study: continuing 'tiny' (6 trials so far)" in capsys.readouterr().out
    more = layout.list_trials(storage, "more")
    assert [(t.number, t.point) for t in more] == [(6, "tpe"), (7, "tpe")]  # documented points are not run again
    assert study.find(storage / "more") == study.find(storage / "tiny")  # from more's experiment.json
    continued = study.load_study(storage / "tiny").trials
    assert [t.number for t in continued] == list(range(8))
    assert [t.user_attrs["experiment"] for t in continued] == ["tiny"] * 6 + ["more"] * 2

    assert main(["leaderboard", "--storage", str(storage), "--name", "tiny", "more"]) == 0
    printed = capsys.readouterr().out
    compared = studies.study_table([storage / "tiny", storage / "more"])
    assert list(compared["experiments"]) == ["tiny, more"] and list(compared["trials"]) == [8]
    assert "Optuna studies" in printed and "tiny, more" in printed


def test_continuing_needs_the_same_families(tmp_path, capsys):
    (tmp_path / "first").mkdir()
    location = study.default_location(str(tmp_path), "first")
    first = optuna.create_study(storage=location.storage, study_name="first", direction="maximize")
    study.label_new_study(first, ["simple_cnn", "deeper_cnn"], "best_val_acc")
    first.add_trial(optuna.trial.create_trial(value=0.5))
    argv = ["run", "--data", "synthetic", "--storage", str(tmp_path), "--continue-study", "first"]
    assert main(argv + [*TINY_SPACES[2:], *TINY_SPACES[:2]]) == 2
    assert "searched simple_cnn,deeper_cnn; continue it with the same families in the same order" in \
        capsys.readouterr().err
    assert main(argv + TINY_SPACES + ["--metric", "val_macro_f1"]) == 2
    assert "maximised best_val_acc; continue it with --metric val_acc" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--continue-study", "nope"], "no experiment folder"),
    (["--study-storage", "studies.db"], "--study-storage studies.db: expected a database URL"),
    (["--resume", "--study-storage", "sqlite:///x.db"], "--resume continues the experiment's own study"),
    (["--storage", "s3://bucket/runs"], "pass --study-storage URL"),
])
def test_study_options_are_checked_before_the_search(options, message, tmp_path, capsys):
    argv = ["run", "simple_cnn", "--data", "synthetic", "--storage", str(tmp_path), "--name", "x", *options]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_relative_sqlite_url_is_made_absolute_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert study.database_url("sqlite:///studies/all.db") == f"sqlite:///{tmp_path}/studies/all.db"
    assert study.database_url("postgresql://team@db/studies") == "postgresql://team@db/studies"


def _study_in(folder: Path, n_trials: int) -> optuna.Study:
    """An experiment folder with a recorded study whose value depends on x far more than on y."""
    folder.mkdir()
    location = study.default_location(str(folder.parent), folder.name)
    made = optuna.create_study(storage=location.storage, study_name=location.study_name, direction="maximize",
                               sampler=optuna.samplers.RandomSampler(seed=0))
    made.optimize(lambda t: t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1), n_trials=n_trials)
    return made


def test_importance_by_optunas_evaluator_or_a_note(tmp_path):
    enough = _study_in(tmp_path / "enough", studies.MIN_COMPLETED_FOR_IMPORTANCE + 10)
    importances, _ = studies.param_importance(enough)
    assert list(importances.index) == ["x", "y"] and importances["x"] > importances["y"]
    assert importances.sum() == pytest.approx(1.0)
    lines = studies.importance_section([tmp_path / "enough"], tmp_path)
    assert "![study enough (20 completed trials)](param_importance_enough.png)" in lines
    assert (tmp_path / "param_importance_enough.png").stat().st_size > 1000

    few = _study_in(tmp_path / "few", 3)
    assert studies.param_importance(few)[0] is None
    assert studies.importance_section([tmp_path / "few"], tmp_path) == [
        "Study 'few' has 3 completed trial(s); parameter importance needs at least 10 (Optuna's evaluator compares "
        "the best tenth of them with all of them). Run more trials, or continue the study with `run "
        "--continue-study`.", ""]


def _states(database: Path) -> dict[int, str]:
    """The study's trials (number -> state), read as another process would."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT number, state FROM trials"))
    except sqlite3.Error:  # no database, or no tables yet
        return {}


def _hold_the_database(database: Path, seconds: float, held: threading.Event) -> None:
    """Once a trial has ended, an exclusive lock on the study's database for longer than SQLite's 5 s wait:
    every write of the driver meanwhile gets `database is locked`."""
    deadline = time.monotonic() + 600
    while "COMPLETE" not in _states(database).values() and time.monotonic() < deadline:
        time.sleep(0.05)
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


FILE_STATES = {layout.COMPLETED: "COMPLETE", layout.STOPPED: "PRUNED", layout.DIVERGED: "FAIL", layout.ERRORED: "FAIL"}


@pytest.mark.slow
def test_a_locked_study_database_does_not_stop_the_search(tmp_path, capsys):
    storage, name = tmp_path / "runs", "locked"
    database = storage / name / study.STUDY_DB
    held = threading.Event()
    holder = threading.Thread(target=_hold_the_database, args=(database, 12, held))
    holder.start()
    try:
        code = main(["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic", "--storage",
                     str(storage), "--name", name, "--num-samples", "5", "--max-epochs", "3", "--grace-period", "1",
                     "--reduction-factor", "2", "--max-train-images", "1024", "--cpus", "1"])
    finally:
        holder.join()
    printed = capsys.readouterr().out
    assert held.is_set() and code == 0, printed
    # Said once on the console and in ray.log, with the recovery.
    assert printed.count("the study database did not answer") == 1 and "answers again" in printed, printed
    assert "did not answer (OperationalError" in (storage / name / "ray.log").read_text() or \
        "did not answer (StorageInternalError" in (storage / name / "ray.log").read_text()
    trials = layout.list_trials(storage, name)
    in_study = _states(database)
    assert len(trials) == 5 and "RUNNING" not in in_study.values()
    assert {t.number: FILE_STATES[t.status] for t in trials} == \
        {number: state for number, state in in_study.items() if number in {t.number for t in trials}}
    assert all(state == "FAIL" for number, state in in_study.items() if number not in {t.number for t in trials})
    assert main(["leaderboard", "--storage", str(storage), "--name", name]) == 0
    [row] = studies.study_table([storage / name]).to_dict("records")
    assert (row["complete"], row["pruned"]) == (sum(t.status == layout.COMPLETED for t in trials),
                                                sum(t.status == layout.STOPPED for t in trials))


@pytest.mark.slow
def test_on_shared_storage_the_study_is_a_journal_file_that_dashboard_and_leaderboard_read(tmp_path, capsys,
                                                                                       monkeypatch):
    """SQLite's locks are not safe on a network file system: with --storage-shared the experiment's own study is
    Optuna's JournalStorage in a file."""
    storage, name = tmp_path / "shared", "journal"
    assert main(["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic", "--storage",
                 str(storage), "--name", name, "--num-samples", "2", "--max-epochs", "1", "--max-train-images", "256",
                 "--cpus", "1", "--storage-shared"]) == 0
    experiment = storage / name
    assert (experiment / study.STUDY_JOURNAL).is_file() and not (experiment / study.STUDY_DB).exists()
    assert json.loads((experiment / "experiment.json").read_text())["study_storage"] is None  # moves with the folder
    location = study.find(experiment)
    assert location == study.StudyLocation(study.journal_url(experiment / study.STUDY_JOURNAL), name)
    assert [t.state.name for t in study.load(location).trials] == ["COMPLETE", "COMPLETE"]
    capsys.readouterr()
    assert main(["leaderboard", "--storage", str(storage), "--name", name]) == 0
    assert "Optuna studies" in capsys.readouterr().out
    assert list(studies.study_table([experiment])["complete"]) == [2]

    import optuna_dashboard

    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **where: served.append(storage))
    assert main(["dashboard", name, "--storage", str(storage)]) == 0
    assert len(optuna.load_study(study_name=name, storage=served[0]).trials) == 2


def test_study_writes_wait_in_order_while_the_database_is_locked(tmp_path, caplog, monkeypatch):
    """Said once per outage; made in order (a trial's result before its outcome) when the database answers; made
    twice (a resume writes again what a killed driver may have written) without harm."""
    from fer_search.search.study_writes import Report, StudyWrites, Tell

    database = tmp_path / "study.db"
    storage = optuna.storages.RDBStorage(study.sqlite_url(database), engine_kwargs={"connect_args": {"timeout": 0.2}})
    made = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    number = made.ask().number
    monkeypatch.setattr(StudyWrites, "RETRY_S", 0.0)
    writes, stopped = StudyWrites(), [Report(number, 2, 0.4), Tell(number, "PRUNED")]
    said = logging.getLogger("fer_search.search.study_writes")
    monkeypatch.setattr(said, "handlers", [caplog.handler])  # (a search in this process routes it to its console)
    lock = sqlite3.connect(database, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    assert not writes.write(made, *stopped) and not writes.flush(made)
    lock.execute("COMMIT")
    assert writes.waiting == stopped and made.trials[number].state.name == "RUNNING"
    assert writes.flush(made) and not writes.waiting
    told = made.trials[number]
    assert told.state.name == "PRUNED" and told.value == 0.4 and told.intermediate_values == {2: 0.4}
    assert [r.getMessage().split(" (")[0].split(";")[0] for r in caplog.records] == [
        "the study database did not answer", "the study database answers again"]
    assert writes.write(made, *stopped, Tell(number, "COMPLETE", 0.9)) and made.trials[number].value == 0.4


def test_a_trial_that_ask_took_before_the_database_failed_is_ended_when_it_answers(tmp_path, monkeypatch):
    """The database fails part-way through Optuna's ask(), after it took a trial: no trial of the search is left
    RUNNING once the database answers, and a documented point it took goes back into the queue."""
    import sqlalchemy.exc

    from fer_search.search.ray_tune import ExperimentOptunaSearch
    from fer_search.search.sampler import SpaceSampler
    from fer_search.search.study import default_location
    from search_spaces import load_space

    sampler = SpaceSampler([load_space(str(SPACES / "tiny_simple_cnn.yaml"))], {})
    (tmp_path / "e").mkdir()
    searcher = ExperimentOptunaSearch(sampler, metric="best_val_acc", seed=0, location=default_location(str(tmp_path), "e"),
                                      experiment="e")
    ask = optuna.Study.ask

    def failing_ask(self, *args, **kwargs):
        ask(self, *args, **kwargs)
        raise sqlalchemy.exc.OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(optuna.Study, "ask", failing_ask)
    assert searcher.suggest("first") is None
    taken = [t for t in searcher._ot_study.get_trials() if t.state.name == "RUNNING"]
    assert len(taken) == 1 and taken[0].user_attrs.get("point")  # the first documented point, taken and lost
    monkeypatch.setattr(optuna.Study, "ask", ask)
    searcher._writes.retry_at = 0.0
    config = searcher.suggest("second")
    trials = searcher._ot_study.get_trials()
    assert trials[taken[0].number].state.name == "FAIL"
    requeued = [t for t in trials if t.user_attrs.get("requeued_from") == taken[0].number]
    assert config is not None and [t.state.name for t in requeued] == ["WAITING"]  # the lost point runs later
    assert requeued[0].params == taken[0].params and requeued[0].user_attrs["point"] == taken[0].user_attrs["point"]
    assert [t.number for t in trials if t.state.name == "RUNNING"] == [searcher._numbers["second"]]
