"""The searcher stack that `run` builds (SessionSearchGenerator(ConcurrencyLimiter(ExperimentOptunaSearch))), killed at
every study write and resumed the way Ray resumes it: from the pickled stack (tuner.pkl), Ray's saved searcher state
where Ray saved one, and the trials Ray restores. No Ray run: a real SQLite study, and the driver's SIGKILL as an
exception raised instead of a chosen write."""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from ray import cloudpickle

from fer_search.search import ray_tune, reconcile, session, study, study_writes
from fer_search.search.layout import FINISHED_KEY
from fer_search.search.sampler import SpaceSampler
from fer_search.search.settings import SearchSettings
from search_spaces import load_space

SPACES = Path(__file__).parent / "spaces"
POINTS = ["collapse", "good"]  # tiny_simple_cnn.yaml's documented points
# RDBStorage's writes, as Optuna's cache in front of it calls them (each one commits).
WRITES = ("_create_new_trial", "set_trial_state_values", "_set_trial_param", "set_trial_user_attr",
          "set_trial_system_attr", "set_trial_intermediate_value")


class Killed(BaseException):
    """The driver's SIGKILL: nothing after it runs, and no handler of the search catches it."""


@contextmanager
def killed_at_write(n: int):
    """Every SQLite study's n-th write (from here on) kills the driver before it is made."""
    count = itertools.count(1)
    originals = {name: getattr(optuna.storages.RDBStorage, name) for name in WRITES}

    def dying(original):
        def write(*args, **kwargs):
            if next(count) == n:
                raise Killed
            return original(*args, **kwargs)
        return write

    for name, original in originals.items():
        setattr(optuna.storages.RDBStorage, name, dying(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(optuna.storages.RDBStorage, name, original)


@pytest.fixture(autouse=True)
def _session_ends():
    yield
    session.current.end()


def _search(tmp_path: Path):
    """(the stack as `run` builds it, tuner.pkl's copy of it, the study's location)."""
    settings = SearchSettings(storage=str(tmp_path), name="exp", metric="val_acc")
    (tmp_path / "exp").mkdir()
    sampler = SpaceSampler([load_space(str(SPACES / "tiny_simple_cnn.yaml"))], settings.overrides())
    stack = ray_tune.search_algorithm(sampler, settings, concurrency=2)
    return stack, cloudpickle.dumps(stack), settings.study_location()


def _resumed(tuner_pkl: bytes, location, restored: list[reconcile.RestoredTrial], state_dir: Path | None = None):
    """The stack as `run --resume` gets it: unpickled from tuner.pkl, then restored from Ray's saved state if any."""
    folder = Path(location.storage.removeprefix("sqlite:///")).parent
    session.current.resumed = session.Resumed(str(folder.parent), folder.name, location, restored, len(restored))
    stack = cloudpickle.loads(tuner_pkl)
    if state_dir is not None:
        stack.restore_from_dir(str(state_dir))
    return stack


def _trials(location) -> list[optuna.trial.FrozenTrial]:
    return study.load(location).get_trials(deepcopy=False)


def _points_kept(location) -> list[str]:
    """The documented points the study still runs or has run: every one once, whatever was lost."""
    return sorted(t.user_attrs["point"] for t in _trials(location)
                  if t.state != optuna.trial.TrialState.FAIL and "point" in t.user_attrs)


def _finish(stack, trial_id: str, value: float) -> None:
    stack.on_trial_complete(trial_id, {"best_val_acc": value, "training_iteration": 3, FINISHED_KEY: "max_epochs"})


@pytest.mark.parametrize("queued", [True, False], ids=["documented point", "tpe"])
def test_a_driver_killed_at_any_write_of_an_ask_leaves_nothing_running_after_resume(tmp_path, queued):
    """Between Optuna's ask and Ray's first snapshot of the trial (Ray restores nothing of it): whichever write
    the driver died before, the resume ends the trial it left (FAIL, a documented point queued again)."""
    killed_at = []
    for n in itertools.count(1):
        folder = tmp_path / str(n)
        folder.mkdir()
        stack, tuner_pkl, location = _search(folder)
        if not queued:  # both documented points ran: the next trial is TPE's
            for trial_id in ("a", "b"):
                stack.searcher.suggest(trial_id)
                _finish(stack, trial_id, 0.5)
        try:
            with killed_at_write(n):
                stack.searcher.suggest("lost")
        except Killed:
            killed_at.append(n)
        else:
            break  # the ask has fewer writes than n: every moment was tried
        resumed = _resumed(tuner_pkl, location, restored=[])
        config = resumed.searcher.suggest("next")
        running = [t.number for t in _trials(location) if t.state.name == "RUNNING"]
        assert running == [config["trial_number"]], f"killed before write {n}: {_trials(location)}"
        assert _points_kept(location) == POINTS, f"killed before write {n}"
        session.current.end()
    assert len(killed_at) >= 3  # the queue's label, the trial taken, its parameters


def test_a_resume_killed_while_it_settles_settles_the_rest_the_next_time(tmp_path):
    """The lost documented point is queued again once, whatever write the first resume died before."""
    for n in itertools.count(1):
        folder = tmp_path / str(n)
        folder.mkdir()
        stack, tuner_pkl, location = _search(folder)
        lost = stack.searcher.suggest("lost")  # asked, then the driver was killed before Ray saved it
        try:
            with killed_at_write(n):
                _resumed(tuner_pkl, location, restored=[]).searcher.suggest("first")
        except Killed:
            pass
        else:
            break
        session.current.end()
        _resumed(tuner_pkl, location, restored=[]).searcher.suggest("second")
        trials = _trials(location)
        assert trials[lost["trial_number"]].state.name == "FAIL", f"killed before write {n}"
        requeued = [t for t in trials if t.user_attrs.get(study_writes.REQUEUED_ATTR) == lost["trial_number"]]
        assert len(requeued) == 1 and requeued[0].user_attrs["point"] == lost["point"], f"killed before write {n}"
        assert _points_kept(location) == POINTS, f"killed before write {n}"
        session.current.end()


def test_a_lost_documented_point_runs_again_with_its_parameters(tmp_path):
    stack, tuner_pkl, location = _search(tmp_path)
    lost = stack.searcher.suggest("lost")
    resumed = _resumed(tuner_pkl, location, restored=[])
    assert resumed.searcher.suggest("collapse")["point"] == "collapse"  # queued before the lost one went back
    again = resumed.searcher.suggest("again")
    assert again["point"] == lost["point"] == "good" and again["trial_number"] != lost["trial_number"]
    assert {key: value for key, value in again.items() if key not in ("trial_number", "seed")} == \
        {key: value for key, value in lost.items() if key not in ("trial_number", "seed")}


def test_the_trials_ray_restores_decide_not_the_searchers_saved_state(tmp_path):
    """Ray saves the searcher apart from its trials, and a driver killed while Ray copied them can leave the
    searcher's state newer than the trials' (the searcher holds a trial that Ray will not run): that trial is
    ended, the limiter's slot freed, and the trial count is Ray's."""
    stack, tuner_pkl, location = _search(tmp_path)
    first = stack.searcher.suggest("first")
    stack.searcher.suggest("unsaved")  # in the searcher's saved state, not in Ray's
    stack.save_to_dir(str(tmp_path), session_str="s1")
    restored = [reconcile.RestoredTrial("first", first["trial_number"], "RUNNING", {})]
    resumed = _resumed(tuner_pkl, location, restored, state_dir=tmp_path)
    assert resumed.searcher.live_trials == {"first"} and resumed._counter == 1
    states = {t.number: t.state.name for t in _trials(location)}
    assert states[first["trial_number"]] == "RUNNING" and list(states.values()).count("RUNNING") == 1
    assert resumed.searcher.suggest("next") is not None  # the freed slot is used
    _finish(resumed, "first", 0.6)  # the restored trial still reaches the study
    assert _trials(location)[first["trial_number"]].state.name == "COMPLETE"


def test_an_outcome_ray_saved_but_the_study_missed_is_written_on_resume(tmp_path):
    stack, tuner_pkl, location = _search(tmp_path)
    first = stack.searcher.suggest("first")
    ended = {"best_val_acc": 0.4, "training_iteration": 2}  # ASHA stopped it; the driver died before telling
    restored = [reconcile.RestoredTrial("first", first["trial_number"], "TERMINATED", ended)]
    _resumed(tuner_pkl, location, restored).searcher.suggest("next")
    told = _trials(location)[first["trial_number"]]
    assert told.state.name == "PRUNED" and told.value == 0.4 and told.intermediate_values == {2: 0.4}


def test_an_errored_trial_that_a_resume_finishes_reaches_tpe(tmp_path):
    """Through the stack: the concurrency limiter drops the end of a trial it no longer counts as running, so the
    errored trial that Ray restarts must count again."""
    stack, tuner_pkl, location = _search(tmp_path)
    config = stack.searcher.suggest("t1")
    stack.on_trial_result("t1", {"best_val_acc": 0.3, "training_iteration": 1})
    stack.on_trial_complete("t1", error=True)  # the first session: it errored
    stack.save_to_dir(str(tmp_path), session_str="s1")
    restored = [reconcile.RestoredTrial("t1", config["trial_number"], "ERROR", {})]
    resumed = _resumed(tuner_pkl, location, restored, state_dir=tmp_path)
    resumed.on_trial_result("t1", {"best_val_acc": 0.4, "training_iteration": 2})  # Ray restarted it; it runs on
    _finish(resumed, "t1", 0.55)
    failed = _trials(location)[config["trial_number"]]
    [learned] = [t for t in _trials(location) if t.state.name == "COMPLETE"]
    assert failed.state.name == "FAIL" and learned.value == 0.55
    assert learned.params == failed.params and learned.user_attrs["point"] == config["point"]


def _trial_folder_without_rays_files(experiment: Path, number: int, finished_by: str | None) -> None:
    """What a killed driver leaves of a trial that started after Ray last copied its own files in: the trial's
    checkpoints (written straight into the folder), no params.json or result.json (staged on the driver)."""
    import json

    folder = experiment / f"{number:03d}_simple_cnn_tpe"
    config = {"arch": "simple_cnn", "family": "simple_cnn", "point": "tpe", "trial_number": number, "lr": 0.01}
    summary = {"config": config, "metric": "val_acc", "best_epoch": 2, "best_dir": "best_epoch_0002",
               "epochs_trained": 3, "metrics": {"epoch": 2, "val_acc": 0.5, "val_macro_f1": 0.4}}
    if finished_by:
        summary[FINISHED_KEY] = finished_by
    (folder / "checkpoint_000001").mkdir(parents=True)
    (folder / "checkpoint_000001" / "summary.json").write_text(json.dumps(summary))


def test_a_trial_whose_ray_files_the_killed_driver_never_copied_is_listed_from_its_checkpoint(tmp_path):
    """A trial that ended between Ray's last copy of its driver files and the kill is listed as ended (and counts as
    a trial of the experiment); one that had not ended is listed and marked not resumed; a folder Ray restores,
    or one with its params.json, is left alone."""
    from fer_search.search import layout

    experiment = tmp_path / "runs" / "e"
    _trial_folder_without_rays_files(experiment, 4, "max_epochs")
    _trial_folder_without_rays_files(experiment, 5, None)
    _trial_folder_without_rays_files(experiment, 6, "max_epochs")  # Ray restores this one: its files will come
    restored = [reconcile.RestoredTrial("id6", 6, "RUNNING", {})]
    assert layout.list_trials(tmp_path / "runs", "e") == []  # what the resume found before this

    assert reconcile.recover_ray_files(experiment, restored) == ["004_simple_cnn_tpe", "005_simple_cnn_tpe"]
    forgotten = reconcile.forgotten_folders(experiment, restored)
    reconcile.mark_not_resumed([t for t in forgotten if t.status == layout.RUNNING])
    ended, unended = layout.list_trials(tmp_path / "runs", "e")
    assert (ended.number, ended.status, ended.epochs, ended.results[-1]["best_val_acc"]) == (4, layout.COMPLETED, 3, 0.5)
    assert (unended.number, unended.status) == (5, layout.ERRORED) and "not resumed" in unended.failure()
    assert reconcile.recover_ray_files(experiment, restored) == []  # done once
    # A summary the kill cut short: the checkpoint before it speaks; with none readable, the folder is left alone.
    _trial_folder_without_rays_files(experiment, 7, "max_epochs")
    (experiment / "007_simple_cnn_tpe" / "checkpoint_000002").mkdir()
    (experiment / "007_simple_cnn_tpe" / "checkpoint_000002" / "summary.json").write_text("")
    (experiment / "008_simple_cnn_tpe" / "checkpoint_000000").mkdir(parents=True)
    (experiment / "008_simple_cnn_tpe" / "checkpoint_000000" / "summary.json").write_text('{"config": {"tri')
    assert reconcile.recover_ray_files(experiment, restored) == ["007_simple_cnn_tpe"]
    # The ended ones count as trials of the experiment; the one never resumed does not, at this resume or a later.
    assert [reconcile.ran_to_an_end(t) for t in layout.list_trials(tmp_path / "runs", "e")] == [True, False, True]
