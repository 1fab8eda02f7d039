"""Every write a search makes to its Optuna study, guarded (Ray-free): a busy or failing database never stops
the search.

SQLite answers `database is locked` after its 5 s wait while another process holds the file; a database
server or a network file system can be away for a while. A write that fails waits, in order with the ones
after it (a trial's results before its outcome), and is tried again at the search's next write and at its
end. The first failure of an outage is said once (ray.log and the console), and so is the recovery. What
still waits when the driver stops is saved with the searcher's state, and the resume writes it; a trial's
outcome is also written again from Ray's saved result (reconcile.py).

Each write is plain data naming its study trial by number, so it can be saved, and written twice without
harm: a trial already finished, a step already reported, a copy already made are left as they are.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from fer_search.search.study import EXPERIMENT_ATTR, STORAGE_ERRORS

log = logging.getLogger(__name__)
RESUMED_ATTR = "resumed_trial_number"  # a copy's user attribute: the FAIL trial whose resumed run it tells TPE
REQUEUED_ATTR = "requeued_from"  # a queued documented point's user attribute: the trial it replaces


def _trial_id(study: optuna.Study, number: int) -> int:
    # Written through the study's own storage object: it caches the trials Optuna reads back (a PRUNED trial's
    # value is its last step there), so writing past it would leave the cache behind.
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return study._storage.get_trial(_trial_id(study, number))


def ask(study: optuna.Study, experiment: str) -> optuna.Trial:
    """A new trial of the study, labelled with the experiment that asks for it.

    Optuna writes a trial (or takes a queued one) and its attributes in separate steps, and a driver killed
    between the two would leave a RUNNING trial that no resume can tell for its own. So the trial that ask()
    takes is labelled first: the oldest queued one (a documented point), or a new queued one without
    parameters, which TPE then samples. Killed before ask(), the label stays on a queued trial, which the next
    ask() takes as its own.
    """
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if waiting:
        study._storage.set_trial_user_attr(_trial_id(study, waiting[0].number), EXPERIMENT_ATTR, experiment)
    else:
        study.enqueue_trial({}, user_attrs={EXPERIMENT_ATTR: experiment})
    trial = study.ask()
    if trial.user_attrs.get(EXPERIMENT_ATTR) != experiment:  # another driver on the same study took that one
        trial.set_user_attr(EXPERIMENT_ATTR, experiment)
    return trial


@dataclass(frozen=True)
class Report:
    """A result of a running trial: its value at `step` (Optuna keeps the last one of a pruned trial)."""
    number: int
    step: int
    value: float

    def apply(self, study: optuna.Study) -> None:
        if not frozen(study, self.number).state.is_finished():
            study._storage.set_trial_intermediate_value(_trial_id(study, self.number), self.step, self.value)


@dataclass(frozen=True)
class Tell:
    """A trial's outcome: COMPLETE with its value, PRUNED (its last reported value), or FAIL."""
    number: int
    state: str
    value: float | None = None

    def apply(self, study: optuna.Study) -> None:
        study.tell(self.number, self.value, state=TrialState[self.state], skip_if_finished=True)


@dataclass(frozen=True)
class Requeue:
    """A documented point whose trial was lost with a killed driver goes back into the study's queue, with its
    parameters and attributes (once: a resume killed while it wrote this writes it again)."""
    number: int

    def apply(self, study: optuna.Study) -> None:
        if any(t.user_attrs.get(REQUEUED_ATTR) == self.number for t in study.get_trials(deepcopy=False)):
            return
        lost = frozen(study, self.number)
        attributes = {key: value for key, value in lost.user_attrs.items() if key in ("family", "point")}
        study.enqueue_trial(lost.params, user_attrs={**attributes, REQUEUED_ATTR: self.number})


@dataclass(frozen=True)
class ResumedCopy:
    """A trial told FAIL when it errored, then resumed (--resume) and ended: Optuna cannot change a finished
    trial, so TPE learns the outcome from a copy with the same parameters (one copy, whatever is written twice)."""
    number: int
    state: str
    value: float
    step: int

    def apply(self, study: optuna.Study) -> None:
        told = frozen(study, self.number)
        copies = (t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RESUMED_ATTR) == self.number)
        if told.state != TrialState.FAIL or any(copies):
            return
        study.add_trial(optuna.trial.create_trial(
            state=TrialState[self.state], value=self.value, params=told.params, distributions=told.distributions,
            user_attrs={**told.user_attrs, RESUMED_ATTR: self.number}, intermediate_values={self.step: self.value}))


@dataclass(frozen=True)
class EndUntaken:
    """A trial that ask() took from the study but never handed back, the database having failed part-way through
    it: RUNNING, labelled with this experiment, and not one of the trials this search knew when ask() failed
    (`known`; no trial is asked while a write waits). Told FAIL; a documented point goes back into the queue."""
    experiment: str
    known: frozenset[int]

    def apply(self, study: optuna.Study) -> None:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get(EXPERIMENT_ATTR) == self.experiment and trial.number not in self.known:
                if trial.user_attrs.get("point"):
                    Requeue(trial.number).apply(study)
                Tell(trial.number, "FAIL").apply(study)


Write = Report | Tell | Requeue | ResumedCopy | EndUntaken


class StudyWrites:
    """The writes of one search, in order: each is tried when it is made, and those that wait, at the next one
    (at most every RETRY_S seconds while the database does not answer: each try can hold the driver for SQLite's
    5 s wait)."""

    RETRY_S = 10.0

    def __init__(self):
        self.waiting: list[Write] = []
        self.failing = False  # the database has not answered since the first failure was said
        self.retry_at = 0.0  # time.time() before which a failing database is not tried again

    def write(self, study: optuna.Study, *writes: Write) -> bool:
        self.waiting.extend(writes)
        return self.flush(study)

    def flush(self, study: optuna.Study, now: bool = False) -> bool:
        """Tries the waiting writes in order (while failing: once RETRY_S has passed, or `now`); False while the
        database does not answer."""
        if self.failing and not now and time.time() < self.retry_at:
            return False
        wrote = bool(self.waiting)
        while self.waiting:
            try:
                self.waiting[0].apply(study)
            except STORAGE_ERRORS as exc:
                self.went_away(exc)
                return False
            except (ValueError, KeyError, optuna.exceptions.UpdateFinishedTrialError) as exc:
                # Written before (a resume writes again what a killed driver may have written): nothing to do.
                log.debug("study write %s left out: %s", self.waiting[0], exc)
            self.waiting.pop(0)
        if wrote:
            self.answered()
        return True

    def answered(self) -> None:
        """The database has answered (a write, or an ask, went through)."""
        if self.failing:
            self.failing = False
            log.warning("the study database answers again; the writes that waited are done")

    def went_away(self, exc: Exception) -> None:
        self.retry_at = time.time() + self.RETRY_S
        if not self.failing:
            self.failing = True
            first_line = (str(exc).splitlines() or [""])[0]
            log.warning(f"the study database did not answer ({type(exc).__name__}: {first_line}); the search goes "
                        "on, and its study writes wait until it answers (or `run --resume` writes them)")
