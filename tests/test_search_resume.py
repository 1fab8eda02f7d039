"""`run --resume`: after the driver is killed mid-search (SIGKILL: no chance to clean up), of an experiment folder
moved or copied elsewhere, and what it refuses or rebuilds (the experiment record, ASHA's rungs). The searcher stack's
part of a resume, killed at every study write: test_resume_settle.py."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fer_search.cli import main
from fer_search.search import layout

SPACES = Path(__file__).parent / "spaces"
ENDED = (layout.COMPLETED, layout.STOPPED)


def _saved_trials(experiment: Path) -> dict[str, tuple[int, str]]:
    """Ray's newest saved experiment state (what --resume restores): trial name -> (study trial number, status);
    empty while there is none, or while Ray is writing it."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    try:
        trials = json.loads(states[-1].read_text())["trial_data"] if states else []
    except (json.JSONDecodeError, KeyError):
        return {}
    saved = {}
    for trial_json, _ in trials:
        trial = json.loads(trial_json)
        saved[trial["relative_logdir"] or trial["trial_id"]] = (trial["config"]["trial_number"], trial["status"])
    return saved


def _study_states(experiment: Path) -> dict[int, str]:
    """The study's trials (number -> state), read as another process would while the driver writes."""
    database = experiment / "study.db"
    if not database.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT number, state FROM trials ORDER BY number"))
    except sqlite3.Error:  # tables not made yet
        return {}


def _trials(experiment: Path) -> list[layout.Trial]:
    return layout.list_trials(experiment.parent, experiment.name) if experiment.is_dir() else []


# The five moments a driver is killed at, each a test of the experiment folder and the driver's log
# (its console: one line per trial start and end), never of the time. Trial files reach the storage folder
# only when Ray copies them there, so the console says first what is going on.
@dataclass
class Seen:
    log: str  # the driver's console so far
    checkpoints_before: set[Path]  # the trials' checkpoint folders when the driver started
    numbers_before: set[int]  # the study's trials that had been asked for when the driver started


def _loading_data(experiment: Path, seen: Seen) -> bool:
    """`--resume` found nothing started and said so; the data is loading (it prints "data:" when done)."""
    return "starting it" in seen.log and "data:" not in seen.log


def _first_epoch_of_first_trial(experiment: Path, seen: Seen) -> bool:
    return "] start  000_" in seen.log and "] best " not in seen.log and "] end " not in seen.log


def _between_ask_and_snapshot(experiment: Path, seen: Seen) -> bool:
    """This driver has asked the study for a trial that Ray's saved state does not hold yet: killed now, Ray will
    not restore it."""
    saved = {number for number, _ in _saved_trials(experiment).values()}
    asked = {number for number, state in _study_states(experiment).items() if state == "RUNNING"}
    return bool(saved) and bool(asked - saved - seen.numbers_before)


def _writing_a_checkpoint(experiment: Path, seen: Seen) -> bool:
    """A checkpoint folder has appeared that was not there before: Ray is copying it into place."""
    return bool(set(experiment.glob("*/checkpoint_*")) - seen.checkpoints_before)


def _gathering_results(experiment: Path, seen: Seen) -> bool:
    """The last trial has ended; the driver is saving its state, stopping Ray, printing the outcome."""
    return "0 running, 3/3 ended" in seen.log


def _kill_at(moment, command: list[str], experiment: Path, log: Path) -> int:
    """Runs the driver until `moment` holds, then SIGKILLs it with its Ray processes; its return code."""
    asked = {number for number, state in _study_states(experiment).items() if state != "WAITING"}
    seen = Seen("", set(experiment.glob("*/checkpoint_*")), asked)
    with open(log, "w") as out:
        # Its own session: killing the group takes Ray's processes down with the driver.
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while driver.poll() is None and time.monotonic() < deadline and not moment(experiment, seen):
                time.sleep(0.05)
                seen.log = log.read_text()
        finally:
            if driver.poll() is None:
                _kill_session(driver.pid)
            driver.wait()
    return driver.returncode


def _kill_session(session: int) -> None:
    """SIGKILLs every process of the driver's session and waits until none is left. Ray's workers lead process
    groups of their own (a kill of the driver's group leaves them writing checkpoints for a moment), but they stay
    in its session."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) == session and "Z" not in (entry / "stat").read_text().split(")")[-1][:3]:
                    os.kill(int(entry.name), signal.SIGKILL)
                    alive.append(entry.name)
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of the killed run still alive after 60 s: {alive}")


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_at_five_points(tmp_path):
    """SIGKILL at each of five moments, then `run --resume`: what had ended stays as it was, the search
    ends with every requested trial and each documented point run once (and one trial more, asked for by the
    last resume), the study agrees with the files, and `ensemble` works."""
    storage, name = tmp_path / "runs", "resume"
    experiment = storage / name
    command = [sys.executable, "-m", "fer_search", "run", "--space", str(SPACES / "tiny_simple_cnn.yaml"),
               "--data", "synthetic", "--storage", str(storage), "--name", name, "--num-samples", "3",
               "--max-epochs", "3", "--grace-period", "3", "--max-train-images", "2048", "--cpus", "1", "--resume"]
    ended: dict[str, tuple] = {}  # trial name -> (status, epochs, metrics) when first seen ended
    history = []  # what each kill left, for the failure messages
    for attempt, moment in enumerate((_loading_data, _first_epoch_of_first_trial, _between_ask_and_snapshot,
                                      _writing_a_checkpoint, _gathering_results)):
        log = tmp_path / f"run{attempt}.log"
        code = _kill_at(moment, command, experiment, log)
        history.append(f"killed {moment.__name__}: study {_study_states(experiment)}, Ray saved "
                       f"{_saved_trials(experiment)}")
        assert code == -signal.SIGKILL, f"{moment.__name__}: the driver ended first\n{log.read_text()}"
        saved = _saved_trials(experiment)
        for trial in _trials(experiment):
            if saved.get(trial.name, (0, ""))[1] == "TERMINATED" and trial.name not in ended:
                ended[trial.name] = (trial.status, trial.epochs, trial.summary()["metrics"])

    # The last resume also asks for one trial more: a finished search extends where its study was.
    rerun = subprocess.run(command + ["--num-samples", "4"], capture_output=True, text=True, timeout=600)
    history.append(f"after the last resume: study {_study_states(experiment)}")
    story = "\n".join(history)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr + story
    assert "4 trials in all" in rerun.stdout
    after = layout.list_trials(storage, name)
    finished = [t for t in after if t.status in ENDED]
    assert len({t.number for t in finished}) == len(finished) == 4, story  # every requested trial, none twice
    assert sorted(t.point for t in finished if t.point != "tpe") == ["collapse", "good"], story  # each point once
    assert all(t.model_path and t.probs_path for t in finished)
    # The study agrees with the files: a trial the killed driver had asked for and Ray never ran (or ran and
    # forgot: its folder says "not resumed") is FAIL, never left RUNNING; every other trial ran.
    in_study = _study_states(experiment)
    assert "RUNNING" not in in_study.values(), story
    assert {number for number, state in in_study.items() if state != "FAIL"} == {t.number for t in finished}, story
    assert all(in_study[t.number] == "FAIL" and "not resumed" in t.failure() for t in after if t not in finished)
    for trial in after:
        if trial.name in ended:  # ended before a kill: kept as it was, not run again
            assert (trial.status, trial.epochs, trial.summary()["metrics"]) == ended[trial.name], trial.name
    assert main(["ensemble", "--top", "2", "--storage", str(storage), "--out", str(tmp_path / "ensemble")]) == 0


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder: relative path -> (size, modification time)."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


def _next_trial_asked(experiment: Path, seen: Seen) -> bool:
    """The first trial has ended and the study has handed out the next one."""
    asked = {number for number, state in _study_states(experiment).items() if state == "RUNNING"}
    return "] end    000_" in seen.log and bool(asked - {0})


def _agrees_with_its_files(experiment: Path, trials: int) -> str | None:
    """What is wrong with a finished experiment's study (None: nothing): every requested trial ran once, each
    documented point once, and the study says what the files say."""
    after = layout.list_trials(experiment.parent, experiment.name)
    finished = {t.number: t for t in after if t.status in ENDED}
    states = _study_states(experiment)
    if len(finished) != trials or sorted(t.point for t in finished.values() if t.point != "tpe") != ["collapse", "good"]:
        return f"trials {[(t.name, t.status) for t in after]}"
    if "RUNNING" in states.values() or {n for n, state in states.items() if state != "FAIL"} != set(finished):
        return f"study {states}, finished trials {sorted(finished)}"
    return None


@pytest.mark.slow
def test_a_moved_or_copied_experiment_resumes_with_its_own_study(tmp_path):
    """Tried as a new user would: SIGKILL the driver, copy the experiment folder elsewhere and resume the copy,
    then `mv` the folder to another storage folder and resume it there. Each resumed folder's own study is the
    one that goes on; the original is never touched."""
    original, name = tmp_path / "first", "moving"
    command = [sys.executable, "-m", "fer_search", "run", "--space", str(SPACES / "tiny_simple_cnn.yaml"),
               "--data", "synthetic", "--name", name, "--num-samples", "3", "--max-epochs", "2",
               "--grace-period", "2", "--max-train-images", "1024", "--cpus", "1"]
    code = _kill_at(_next_trial_asked, command + ["--storage", str(original)], original / name, tmp_path / "run.log")
    assert code == -signal.SIGKILL, (tmp_path / "run.log").read_text()
    saved = _saved_trials(original / name)
    ended = {t.name: (t.epochs, t.summary()["metrics"]) for t in _trials(original / name)
             if saved.get(t.name, (0, ""))[1] == "TERMINATED"}
    untouched = _files(original / name)

    for storage, move in ((tmp_path / "copied", shutil.copytree), (tmp_path / "moved", shutil.move)):
        move(original / name, storage / name)
        resumed = subprocess.run(command + ["--storage", str(storage), "--resume"], capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert _agrees_with_its_files(storage / name, trials=3) is None, (storage.name, _agrees_with_its_files(
            storage / name, trials=3), resumed.stdout)
        kept = {t.name: (t.epochs, t.summary()["metrics"]) for t in _trials(storage / name) if t.name in ended}
        assert kept == ended  # every finished trial kept as it was
        if move is shutil.copytree:
            assert _files(original / name) == untouched  # the copy's study and trials left it alone
    assert not (original / name).exists()  # nothing was made again where the moved folder was


def test_a_resume_goes_on_from_rays_snapshot_before_the_files_cut_short(tiny_search, tmp_path):
    """Ray copies its saved state and trial files into the folder file by file, overwriting in place: a driver
    killed during the copy can leave any of them cut short or empty (files of earlier sessions too), and Ray would
    start the experiment afresh, or not at all. The resume sets the cut states aside and restores the newest whole
    ones, puts tuner.pkl back from its copy, and rewrites an ended trial's emptied result.json from its checkpoint."""
    from fer_search.search import layout, ray_tune, session

    storage = tmp_path / "runs"
    shutil.copytree(tiny_search[0], storage)
    experiment = storage / tiny_search[1]
    cut_short = []
    for kind in ("experiment_state", "search_gen_state"):  # the trials; the search generator's counts
        [saved] = experiment.glob(f"{kind}-*.json")
        for day, length in (("01", 200), ("02", 0)):  # the newest two
            cut_short.append(saved.with_name(f"{kind}-2999-01-{day}_00-00-00.json"))
            cut_short[-1].write_bytes(saved.read_bytes()[:length])
    tuner = (experiment / "tuner.pkl").read_bytes()
    assert (experiment / "tuner.pkl.kept").read_bytes() == tuner  # the copy the search kept
    (experiment / "tuner.pkl").write_bytes(b"")
    before = {trial.name: (trial.status, trial.epochs) for trial in layout.list_trials(storage, tiny_search[1])}
    emptied = next(trial for trial in layout.list_trials(storage, tiny_search[1]) if trial.status == layout.COMPLETED)
    (emptied.path / "result.json").write_bytes(b"")
    try:
        ray_tune._prepare_resume(str(storage), tiny_search[1])
        assert sorted(trial.number for trial in session.current.resumed.restored) == list(range(6))
    finally:
        session.current.end()
    assert all(not path.exists() and path.with_suffix(".unreadable").is_file() for path in cut_short)
    assert (experiment / "tuner.pkl").read_bytes() == tuner
    assert {trial.name: (trial.status, trial.epochs) for trial in layout.list_trials(storage, tiny_search[1])} == before


def _recorded_experiment(storage: Path, name: str, **changes) -> Path:
    """An experiment folder as a search leaves it for --resume: Ray's tuner.pkl and our record (of
    `run simple_cnn --data synthetic`), without running one."""
    from fer_search.data import load_data
    from fer_search.search.record import ExperimentRecord, content_hash, val_ids_hash

    data = load_data("synthetic", progress=False)
    experiment = storage / name
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"")
    values = dict(families=["simple_cnn"], space_files=[], data="synthetic", data_hash=content_hash(data),
                  val_seed=0, val_fraction=0.1, val_ids_hash=val_ids_hash(data), keep_test_copies=False,
                  metric="val_acc", max_epochs=3, num_samples=4, command=["run", "simple_cnn"])
    ExperimentRecord(**{**values, **changes}).save(experiment)
    return experiment


@pytest.mark.parametrize("changes, argv, message", [
    ({}, ["resnet"], "--resume: this experiment searched simple_cnn; leave FAMILY and --space out"),
    ({}, ["--seed", "3"], "--resume: --seed 3 would carve another validation split than the experiment's (seed 0)"),
    ({}, ["--num-samples", "2"], "--resume: --num-samples 2 is fewer than the experiment's 4"),
    ({"data_hash": "0" * 64}, [], "--resume: the data at synthetic differs from the data this experiment"),
    ({"val_ids_hash": "0" * 64}, [], "--resume: the validation split differs from the experiment's (seed 0"),
])
def test_resume_refuses_another_search_or_other_data(tmp_path, capsys, changes, argv, message):
    _recorded_experiment(tmp_path, "exp", **changes)
    assert main(["run", *argv, "--storage", str(tmp_path), "--name", "exp", "--resume"]) == 2
    assert message in capsys.readouterr().err


def test_a_record_written_before_data_hash_was_named_so_still_resumes(tmp_path):
    from fer_search.search.record import load_record

    experiment = _recorded_experiment(tmp_path, "exp")
    fields = json.loads((experiment / "experiment.json").read_text())
    fields["data_fingerprint"] = fields.pop("data_hash")
    (experiment / "experiment.json").write_text(json.dumps(fields))
    assert load_record(experiment).data_hash == fields["data_fingerprint"]


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

    from fer_search.search.ray_adaptations import RungHistoryASHA

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


def test_resume_warns_about_options_the_restored_search_keeps(tmp_path, capsys, monkeypatch):
    _recorded_experiment(tmp_path, "exp")
    monkeypatch.setattr("fer_search.search.ray_tune.run_search", lambda *args, **kwargs: None)  # no search
    monkeypatch.setattr("fer_search.search.session.budget_ran_out", lambda: False)  # (so no earlier search's)
    code = main(["run", "--storage", str(tmp_path), "--name", "exp", "--resume", "--max-epochs", "9", "--metric",
                 "val_macro_f1", "--num-samples", "6"])
    assert code == 1  # no trial ran: the outcome says so
    captured = capsys.readouterr()
    assert ("warning: --resume keeps the experiment's own settings; ignoring --max-epochs, --metric"
            in captured.err)
    assert "resuming" in captured.out and "6 trials in all" in captured.out
    assert json.loads((tmp_path / "exp" / "experiment.json").read_text())["num_samples"] == 6
