"""Where fer_search's search changes what Ray Tune and Optuna do by default, and why (each class says more).

- SearchStopper: a trial ends at the result that says the trainer finished it, and every running trial at its
  next result once the time budget is spent, through Tune's STOP decision, so that the scheduler, the searcher
  and the callbacks all hear of it (Ray's own time_budget_s stops trials behind their backs).
- SessionSearchGenerator: on --resume it forgets that a spent budget finished it, makes trials up to this
  session's --num-samples, counts the trials Ray restores, and makes new trials where the folder is now.
- ExperimentOptunaSearch: Ray's OptunaSearch with the documented points enqueued first, ASHA's stops told to the
  study as PRUNED (Ray tells them as COMPLETE), every study write guarded against a busy database, and a study
  that is opened where the experiment is now, never pickled.
- PointBudgetASHA, RungHistoryASHA, BudgetASHA: ASHA that lets a documented point with its own budget run to
  its end, whose rungs survive --resume (Tune does not save the scheduler), and that starts nothing once the
  time budget is spent (waiting trials end, told FAIL).
- BudgetLedger: tells a planned budget's start guard (guard.py) each epoch and each end.
- HeaderKeepingCSVLogger: a trial that continues its progress.csv writes under the file's own header.
- SeriesWandbCallback: W&B runs tagged per trial as the documented series tagged them.

They read this driver session's settings from session.current, never from their pickled copies.
"""
from __future__ import annotations

import copy
import csv
import logging
import pickle
from pathlib import Path

import optuna
import pyarrow.fs
from ray import tune
from ray.air.constants import EXPR_PROGRESS_FILE
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import SearchGenerator, Searcher
from ray.tune.search.optuna import OptunaSearch

from fer_search.errors import UserError
from fer_search.search import reconcile, session, study, study_writes
from fer_search.search.layout import DIVERGED_BY, FINISHED_KEY, recorded_results, trial_name
from fer_search.search.sampler import TPE_POINT, SpaceSampler
from fer_search.search.storage import StoragePath


class SearchStopper(tune.Stopper):
    """Ends a trial at the result that says the trainer finished it (or that it diverged), and every
    running trial at its next result once the time budget is spent.

    Both go through Tune's STOP decision, so the trial's last result is written with `done`, and the
    scheduler, the searcher (Optuna) and the callbacks (console, W&B) all see the trial end. Ray's own
    time_budget_s instead stops trials behind their backs: none of them hears of it. A trial whose
    function simply returns is not told to them either (Tune only counts a duplicate result).
    """

    def __call__(self, trial_id: str, result: dict) -> bool:
        return FINISHED_KEY in result or session.budget_spent()

    def stop_all(self) -> bool:
        return False  # running trials end one by one through __call__; the searcher stops creating new ones


class SessionSearchGenerator(SearchGenerator):
    """Tune's search generator, which on --resume forgets that a spent time budget finished it, and
    creates trials up to this session's number (`run --resume --num-samples N` extends a search)."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._finished = False  # the searcher says FINISHED again if this session's budget runs out
        if session.current.num_samples:
            self._total_samples = session.current.num_samples
        if session.current.resumed is not None:
            _count_restored_trials(self, session.current.resumed.restored, session.current.resumed.trials_so_far)
            _new_trials_where_the_folder_is(self, session.current.resumed)


def _new_trials_where_the_folder_is(generator: SearchGenerator, resumed: session.Resumed) -> None:
    """Tune restores a moved or copied experiment's trials where its folder is now, but makes new trials with the
    storage saved in the generator's experiment, i.e. where the folder was: they would check their storage there
    and fail (moved), or write their checkpoints into the original (copied)."""
    if generator._experiment is None:  # it has made no trial yet
        return
    storage = copy.copy(generator._experiment.spec["storage"])
    storage.storage_filesystem, storage.storage_fs_path = pyarrow.fs.FileSystem.from_uri(resumed.storage)
    storage.experiment_dir_name = resumed.name
    generator._experiment.spec["storage"] = storage


def _count_restored_trials(generator: SearchGenerator, restored: list[reconcile.RestoredTrial],
                           trials_so_far: int) -> None:
    """--resume: the trials made so far, and those the concurrency limiter counts as running, are the ones Ray
    restores, whatever the wrappers' own saved state says (Ray saves it apart from the trials, and a killed
    driver can leave the two from different snapshots). An errored trial that Ray starts again counts as
    running, so its end reaches the searcher through the limiter (which drops the ends of trials it does
    not count), and TPE learns what the resumed trial finished with."""
    generator._counter = trials_so_far
    limiter = generator.searcher
    limiter.live_trials = {trial.trial_id for trial in restored if trial.runs_again}
    limiter.num_unfinished_live_trials = len(limiter.live_trials)


class PointBudgetASHA(ASHAScheduler):
    """ASHA that lets a documented point with its own schedule (SpaceSampler.scheduled_points) run to its end.

    Its results still enter the rungs, as real observations the other trials are measured against,
    but neither a rung's cutoff nor max_t stops it: the trainer ends it, at its own epochs or by its
    own early stopping.
    """

    def __init__(self, budgeted_points: set[tuple[str, str]], **asha):
        super().__init__(**asha)
        self.budgeted_points = set(budgeted_points)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and (trial.config["family"], trial.config["point"]) in self.budgeted_points:
            self._num_stopped -= 1  # ASHA counted a stop that does not happen
            return self.CONTINUE
        return action



class RungHistoryASHA(PointBudgetASHA):
    """ASHA whose rungs survive --resume. Tune does not save the scheduler, so a restored search starts
    with empty rungs, and trials would be compared only with those that reach a rung after the resume.
    Each trial Tune adds back replays its recorded results (result.json) into its bracket, as ASHA
    itself recorded them."""

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if not trial.relative_logdir:
            return  # a new trial: no directory, nothing recorded yet
        bracket = self._trial_info[trial.trial_id]
        # Read where Ray stores the trial: a local folder or a bucket (trial.path has no URI scheme).
        for result in recorded_results(StoragePath(trial.storage.storage_filesystem, trial.path)):
            if self._time_attr in result and self._metric in result:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


class BudgetASHA(RungHistoryASHA):
    """ASHA that starts nothing once the time budget is spent: trials waiting for resources (PENDING, never
    started) are ended without training an epoch, and told to Optuna as FAIL (never run: no observation for
    TPE). The console and the outcome count them as "not started".

    They are ended before a running trial's end frees its resources (Tune starts a waiting trial's worker as soon
    as they are free, without asking the scheduler), and whenever Tune asks the scheduler for a trial to run."""

    def choose_trial_to_run(self, tune_controller):
        if session.budget_spent():
            _end_waiting_trials(tune_controller)
            return None
        return super().choose_trial_to_run(tune_controller)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        if session.budget_spent():
            _end_waiting_trials(tune_controller)

    def on_trial_error(self, tune_controller, trial) -> None:
        super().on_trial_error(tune_controller, trial)
        if session.budget_spent():
            _end_waiting_trials(tune_controller)


def _end_waiting_trials(tune_controller) -> None:
    """End every trial that waits to start for the first time (a retried or resumed one ran before: it goes on)."""
    for trial in list(tune_controller.get_trials()):
        if trial.status == Trial.PENDING and trial.run_metadata.start_time is None:
            session.current.not_started.append(trial_name(trial))
            tune_controller.search_alg.on_trial_complete(trial.trial_id, error=True)  # FAIL, before stop_trial's
            tune_controller.stop_trial(trial)



class BudgetLedger(tune.Callback):
    """Tells a planned budget's start guard (guard.py) each epoch trained and each trial's end; the searcher
    asks it before creating a trial."""

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if session.current.guard is not None:
            session.current.guard.spend_epoch(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if session.current.guard is not None:
            session.current.guard.release(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.on_trial_complete(iteration, trials, trial)



class ExperimentOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, with the documented points enqueued first, ASHA's stops told as PRUNED
    (reconcile.outcome_writes), every study write guarded (study_writes.py), and a study that goes with its
    experiment.

    Each trial it asks the study for is labelled with the experiment, which a continued study holds several of.
    Its saved state (Ray's searcher-state file, and tuner.pkl) never holds a connection to the study: Ray
    restores it on --resume in a folder that may have been moved or copied, so the study is opened where this
    session says it is (the experiment folder's own, or its record's URL), never where it was.
    """

    def __init__(self, sampler: SpaceSampler, *, metric: str, seed: int, location: study.StudyLocation,
                 experiment: str, optuna_sampler: str = "tpe", startup_trials: int = 10):
        self._experiment = experiment
        self._location = location
        self._numbers: dict[str, int] = {}  # Ray's trial id -> its study trial's number
        self._writes = study_writes.StudyWrites()
        # Constant liar: parallel trials that are still running count as bad, so TPE spreads out. Random
        # sampling is the baseline TPE is measured against (benchmarks/search_value.py).
        draws = (optuna.samplers.RandomSampler(seed=seed) if optuna_sampler == "random"
                 else optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials))
        # The study lives in its database (Ray creates it there, or loads it to continue it), not only in
        # Ray's pickle of this searcher.
        super().__init__(space=sampler, metric=metric, mode="max", sampler=draws,
                         storage=study.optuna_storage(location.storage), study_name=location.study_name)
        session.current.searcher = self
        if not self._ot_study.trials:  # a continued study has run its documented points already
            study.label_new_study(self._ot_study, list(sampler.spaces), metric)
            for params, attributes in sampler.documented_points():
                self._ot_study.enqueue_trial(params, user_attrs=attributes)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_ot_study=None, _storage=None, _ot_trials={})  # opened again where the experiment is now
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_location" not in state:  # saved by an older fer_search, with its study's storage in it
            url = getattr(self._storage, "url", None)
            self._location = study.StudyLocation(url, self._study_name) if url else None
            self._numbers, self._writes = {}, study_writes.StudyWrites()
        self._ot_study = self._storage = None
        self._ot_trials = {}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self.__getstate__(), out)

    def restore(self, checkpoint_path: str) -> None:
        """--resume: Ray's saved state, then the study where this session finds it, settled with what Ray restores."""
        saved = _saved_searcher_state(checkpoint_path)
        if saved is not None:
            self.__setstate__(saved)
        self._open_study()

    def _study(self) -> optuna.Study:
        if self._ot_study is None:  # a copy of the searcher (tuner.pkl), which Ray runs afresh
            self._open_study()
        return self._ot_study

    def _open_study(self) -> None:
        self._location = (session.current.resumed and session.current.resumed.study) or self._location
        if self._location is None:
            raise UserError(f"experiment {self._experiment} was started by a version of fer_search that kept its study "
                            "in Ray's state only; it cannot be resumed: start a new --name")
        self._ot_study = study.open_for_search(self._location, self._sampler)
        session.current.searcher = self
        if session.current.resumed is not None:
            self._settle(session.current.resumed.restored)
        self._writes.flush(self._ot_study, now=True)

    def _settle(self, restored: list[reconcile.RestoredTrial]) -> None:
        """--resume: the trials Ray restores are the ones this searcher hears of; what the study has beyond them
        is ended (reconcile.py)."""
        self._numbers = {trial.trial_id: trial.number for trial in restored}
        self._completed_trials = reconcile.ended_in_study(self._ot_study, restored)
        settlement = reconcile.settle_study(self._ot_study, self._experiment, restored, self.metric)
        self._writes.waiting.extend(settlement.writes)
        if settlement.lost:
            print(f"resume: {settlement}", flush=True)

    def flush_writes(self) -> int:
        """Writes what waits (the search's end); returns how many writes still wait."""
        if self._ot_study is not None:
            self._writes.flush(self._ot_study, now=True)
        return len(self._writes.waiting)

    def suggest(self, trial_id: str) -> dict | str | None:
        if session.budget_spent():
            return Searcher.FINISHED
        current = self._study()
        if not self._writes.flush(current):
            return None  # the database does not answer: no new trial now (Tune asks again)
        guard = session.current.guard
        granted = guard.claim(trial_id, _next_trial_kind(current), session.current.deadline) if guard else None
        if guard is not None and granted is None:
            return None if guard.may_make_room() else Searcher.FINISHED
        try:
            trial = study_writes.ask(current, self._experiment)
        except study.STORAGE_ERRORS as exc:
            self._writes.went_away(exc)
            # ask() may have taken a trial before the database failed: it is ended once the database answers.
            self._writes.waiting.append(study_writes.EndUntaken(self._experiment, frozenset(self._numbers.values())))
            return None
        self._writes.answered()
        try:
            # The sampler's configuration as it is: Ray's version would mix in Optuna's internal
            # parameter names ("resnet.lr") and labels.
            config = self._space(trial)
        except study.STORAGE_ERRORS as exc:  # asked, but no configuration: it ends here, as soon as it can
            self._writes.went_away(exc)
            self._writes.waiting.append(study_writes.Tell(trial.number, "FAIL"))
            return None
        self._numbers[trial_id] = trial.number
        if granted is not None and granted < config.get("epochs", granted):
            config["epochs"] = granted  # a lane's last trial: the schedule that fits in what is left (guard.py)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._numbers or self.metric not in result:
            return
        self._writes.write(self._study(), study_writes.Report(self._numbers[trial_id], result["training_iteration"],
                                                              result[self.metric]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._numbers:
            return
        if trial_id in self._completed_trials:
            return self._tell_resumed_trial(trial_id, result, error)
        self._completed_trials.add(trial_id)
        # The result that made ASHA stop a trial goes to on_trial_complete only: it is recorded too.
        self._writes.write(self._study(), *reconcile.outcome_writes(self._numbers[trial_id], result, self.metric,
                                                                    error))

    def _tell_resumed_trial(self, trial_id: str, result: dict | None, error: bool) -> None:
        """A trial told FAIL when it errored, then resumed (--resume) and ended now: TPE learns its outcome from
        a copy (study_writes.ResumedCopy). A trial that ended before, and ran again from its checkpoint because
        Ray's snapshot predates its end, tells nothing new (the copy is made for a FAIL trial only)."""
        if error or not result or self.metric not in result or result.get(FINISHED_KEY) == DIVERGED_BY:
            return
        state = "COMPLETE" if FINISHED_KEY in result else "PRUNED"
        self._writes.write(self._study(), study_writes.ResumedCopy(
            self._numbers[trial_id], state, result[self.metric], int(result["training_iteration"])))



# The class's name in experiments saved before 2026-12-05: --resume unpickles their searcher by that name.
TruthfulOptunaSearch = ExperimentOptunaSearch


def _saved_searcher_state(path: str) -> dict | None:
    """The searcher's saved state, without any storage in it; None where it cannot be read (a copy cut short by
    the killed driver: the searcher then goes on from its first state, settled with what Ray restores)."""
    try:
        with open(path, "rb") as saved:
            state = pickle.load(saved)
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        logging.getLogger("ray.tune").warning(f"the searcher state {path} is unreadable ({exc!r}); going on without it")
        return None
    return state if isinstance(state, dict) else None


def _next_trial_kind(ot_study: optuna.Study) -> str:
    """The budget guard's name for the trial the study will hand out next: a queued documented point's
    "family/point", else "tpe"."""
    queued = ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if queued:
        attributes = min(queued, key=lambda t: t.number).user_attrs
        if "point" in attributes:
            return f"{attributes['family']}/{attributes['point']}"
    return TPE_POINT



class HeaderKeepingCSVLogger(CSVLoggerCallback):
    """Ray's CSV logger, except that a trial that continues its progress.csv (restored by --resume, or retried
    after a failure) writes under the file's own header. Ray's takes its columns from the first new result and
    writes no header, so a result with other keys would put later values under the wrong column names."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        if trial not in self._trial_files:
            self._setup_trial(trial)
        if self._trial_csv[trial] is None and self._trial_continue[trial]:
            header = _csv_header(Path(trial.local_path, EXPR_PROGRESS_FILE))
            if header:
                self._trial_csv[trial] = csv.DictWriter(self._trial_files[trial], header)
        super().log_trial_result(iteration, trial, result)


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle), [])


class SeriesWandbCallback(WandbLoggerCallback):
    """W&B as the documented series logged: tags model type (family and architecture), data-set version
    and experiment type ("search" or "reproduce") on every run; config = the trial's hyperparameters."""

    def __init__(self, *, data_version: str, experiment_type: str, **wandb):
        super().__init__(**wandb)
        self.run_tags = [data_version, experiment_type]

    def _start_logging_actor(self, trial, exclude_results, **init_kwargs):
        # Ray passes one set of wandb.init arguments to every trial; the model-type tags differ per trial.
        tags = list(dict.fromkeys([trial.config["family"], trial.config["arch"], *self.run_tags]))
        super()._start_logging_actor(trial, exclude_results, **{**init_kwargs, "tags": tags})

