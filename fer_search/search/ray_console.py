"""What a search shows on the console: one line per trial event (ConsoleReporter) instead of Ray's tables, and
where Ray's and the study's log lines go (route_logs, route_study_writes): a user sees the ones to act on, and
the experiment's ray.log keeps the rest.
"""
from __future__ import annotations

import logging
import math
import re
import sys
import time
import warnings
from pathlib import Path

import optuna
from ray import tune

from fer_search.search import session, study_writes
from fer_search.search.layout import DIVERGED_BY, ERROR_FILE, FINISHED_KEY, diverged_line, error_line, trial_name


class ConsoleReporter(tune.Callback):
    """One line per event (trial started, new best, trial ended or failed) instead of Ray's tables."""

    def __init__(self, objective: str, num_samples: int):
        self.objective = objective
        self.num_samples = num_samples
        self.best: float | None = None
        self.started = time.monotonic()
        self.running: set[str] = set()
        self.ended: set[str] = set()  # Ray flips a trial's status only after these callbacks

    def setup(self, **info) -> None:
        self.started = time.monotonic()  # again on --resume: the clock shows this session's time
        self.num_samples = session.current.num_samples or self.num_samples

    def _say(self, trials, text: str) -> None:
        ended = self.ended | {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text:<72} | {len(self.running)} running, "
              f"{len(ended)}/{self.num_samples} ended", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self._say(trials, f"start  {trial}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        value = result.get(self.objective)
        if self.best is None:  # after --resume: the restored trials' best counts too
            found = (t.last_result.get(self.objective, math.nan) for t in trials if t is not trial)
            self.best = max((v for v in found if math.isfinite(v)), default=None)
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best):
            self.best = value
            self._say(trials, f"best   {trial}: {self.objective} {value:.4f} at epoch {result['training_iteration']}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        result = trial.last_result
        if result.get(FINISHED_KEY) == DIVERGED_BY:
            self._say(trials, f"FAILED {trial}: {diverged_line(result)}")
            return
        if trial_name(trial) in session.current.not_started:
            self._say(trials, f"end    {trial}: not started (the time budget ran out)")
            return
        stopped_by = "the time budget" if session.budget_spent() else "ASHA"
        how = (f"done ({result[FINISHED_KEY]})" if FINISHED_KEY in result
               else f"stopped by {stopped_by} at epoch {result.get('training_iteration', 0)}")
        value = result.get(self.objective)
        self._say(trials, f"end    {trial}: {how}" + (f", {self.objective} {value:.4f}" if value is not None else ""))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        error = error_line(Path(trial.local_path, ERROR_FILE))
        self._say(trials, f"retry  {trial} from its last checkpoint: {error}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        self._say(trials, f"ERROR  {trial}: {error_line(Path(trial.local_path, ERROR_FILE))}")
        print(f"       full log: {trial.path}/{ERROR_FILE}", flush=True)



RAY_LOG_FILE = "ray.log"
# What the console still shows of Ray's warnings and errors: the ones a user must act on.
ACTIONABLE = re.compile(r"insufficient|infeasible|cannot be scheduled|pending|restor|sync|upload|storage|"
                        r"checkpoint", re.IGNORECASE)
# The reporter speaks for failed trials. (Ray's warnings that experiment snapshots come too often or take too
# long do reach the console: checkpoints that throttle a search are the user's to space out, --checkpoint-every.)
NOT_ACTIONABLE = re.compile(r"Trial task failed|Received additional", re.IGNORECASE)


def route_logs(experiment: Path | None) -> logging.FileHandler | None:
    """Ray's warnings and errors go to EXPERIMENT/ray.log (a local experiment; None: one in a bucket), and to the
    console only those a user must act on (no resources for a trial, a failed restore or storage sync, experiment
    snapshots that slow the search down); our reporter speaks for the rest (a failed trial: its real error and log
    path)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray_logger = logging.getLogger("ray")
    for name in ("ray", "ray.train", "ray.air", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in ray_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_actionable)
    log_file = None
    if experiment is not None:
        Path(experiment).mkdir(parents=True, exist_ok=True)
        log_file = logging.FileHandler(Path(experiment, RAY_LOG_FILE))
        log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        ray_logger.addHandler(log_file)
    warnings.filterwarnings("ignore", module="ray")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's cut-off over diverged trials
    # A retried trial reports again the epochs after its last checkpoint; Optuna keeps the first value of each.
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    return log_file


def route_study_writes(log_file: logging.FileHandler | None) -> list[logging.Handler]:
    """The study's writes speak (once per outage of its database) on this search's console, on the stdout of now,
    and in ray.log beside Ray's; the handlers are this search's own (the logger passes nothing on, so nothing
    else prints them twice)."""
    study_log = logging.getLogger(study_writes.__name__)
    study_log.setLevel(logging.INFO)
    study_log.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("study: %(message)s"))
    handlers = [console] + ([log_file] if log_file is not None else [])
    for handler in handlers:
        study_log.addHandler(handler)
    return handlers


def _actionable(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return bool(ACTIONABLE.search(message)) and not NOT_ACTIONABLE.search(message)
