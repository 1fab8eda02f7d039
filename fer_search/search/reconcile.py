"""What `run --resume` settles before the search goes on (Ray-free): the study and the trial folders, against
the trials that Ray restores.

A driver killed at any moment leaves three records that need not agree: the Optuna study (written at once:
a trial is asked, and told its outcome, as it happens), Ray's saved experiment state (a snapshot every few
seconds, copied file by file into the experiment folder) and the trial folders. Ray's newest saved state is
what Ray restores and runs, so it decides:

- a study trial of this experiment still RUNNING that no restored trial backs was asked after Ray's last
  snapshot (or its snapshot was cut short): Ray will never run it. It is told FAIL, and a documented point
  goes back into the study's queue with its parameters and attributes, so that it runs (once);
- a restored trial that Ray saved as ended while the study still has it RUNNING (its outcome never reached
  the database) is told its outcome from the result Ray saved;
- a trial folder that no restored trial backs and that did not end is marked as not resumed (error.txt says
  why), so the files say what the study says;
- a trial folder whose Ray files never reached the experiment (the driver writes `params.json` and
  `result.json` in a staging folder of its own and copies them in every few seconds, while the trial writes its
  checkpoints straight into the folder) gets them back from its newest checkpoint's summary, so that a trial
  that ended in that window is listed as ended and counted, and one that had not ended is marked as above.

Each step can be done twice: a resume killed while it settled settles the rest the next time.
"""
from __future__ import annotations

import json
import logging
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fer_search.search import layout
from fer_search.search.study import EXPERIMENT_ATTR
from fer_search.search.study_writes import Report, Requeue, Tell, Write

ENDED_IN_RAY = "TERMINATED"  # Ray's status of a trial that ended (ERROR ones are restarted by --resume)
NOT_RESUMED = ("not resumed: the driver was stopped before Ray saved this trial, so --resume cannot continue it "
               "(its study trial is FAIL; a documented point runs again as a new trial)")
# Ray's saved state, one file of each per driver session: the trials, and the search generator's counts.
EXPERIMENT_STATE_FILES, SEARCH_GENERATOR_STATE_FILES = "experiment_state-*.json", "search_gen_state-*.json"
TUNER_FILE, KEPT_TUNER_FILE = "tuner.pkl", "tuner.pkl.kept"  # Ray's Tuner settings; our copy of them


@dataclass(frozen=True)
class RestoredTrial:
    """A trial in Ray's newest saved state, as `--resume` brings it back."""
    trial_id: str  # Ray's
    number: int  # its study trial
    status: str  # Ray's: PENDING, RUNNING, PAUSED, TERMINATED or ERROR
    last_result: dict[str, Any]

    @property
    def runs_again(self) -> bool:
        """Ray resumes it (an unfinished or errored trial), so it is live again."""
        return self.status != ENDED_IN_RAY


def outcome_writes(number: int, result: dict[str, Any] | None, metric: str, error: bool = False) -> list[Write]:
    """What the study is told when a trial ends.

    Ray tells Optuna a trial that ASHA stopped early as COMPLETE with its low-budget value, so TPE would
    treat an epoch-2 score as a final one. Here only a trial the trainer ended itself (`finished_by`) is
    COMPLETE; any other end without an error is a stop (ASHA, the time budget) and is PRUNED, after its
    last result (Optuna keeps it as the value, which TPE ranks below every completed trial). A trial that
    errored or diverged is FAIL.
    """
    result = result or {}
    value = result.get(metric)
    if error or result.get(layout.FINISHED_KEY) == layout.DIVERGED_BY:
        return [Tell(number, "FAIL")]
    if value is None:
        return [Tell(number, "PRUNED")]
    if layout.FINISHED_KEY in result:
        return [Tell(number, "COMPLETE", value)]
    return [Report(number, int(result["training_iteration"]), value), Tell(number, "PRUNED")]


@dataclass
class Settlement:
    writes: list[Write]  # in order
    lost: list[int]  # study trials asked by a killed driver that Ray does not restore
    requeued: list[int]  # those of them that carried a documented point

    def __str__(self) -> str:
        again = f"; the documented point(s) they carried ({_numbers(self.requeued)}) run again" if self.requeued else ""
        return (f"study trial(s) {_numbers(self.lost)} started after Ray last saved the search and were lost with "
                f"the driver: FAIL{again}")


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))


def settle_study(study: optuna.Study, experiment: str, restored: list[RestoredTrial], metric: str) -> Settlement:
    """The writes that make the study agree with what Ray restores (see the module's docstring)."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    writes: list[Write] = []
    for trial in restored:
        told = trials.get(trial.number)
        if told is not None and told.state == TrialState.RUNNING and trial.status == ENDED_IN_RAY:
            writes += outcome_writes(trial.number, trial.last_result, metric)
    backed = {trial.number for trial in restored}
    lost = [t for t in trials.values() if t.state == TrialState.RUNNING and t.number not in backed
            and t.user_attrs.get(EXPERIMENT_ATTR) == experiment]
    requeued = [t.number for t in lost if t.user_attrs.get("point")]
    for trial in lost:
        writes += [Requeue(trial.number)] if trial.number in requeued else []
        writes.append(Tell(trial.number, "FAIL"))
    return Settlement(writes, [t.number for t in lost], requeued)


def ended_in_study(study: optuna.Study, restored: list[RestoredTrial]) -> set[str]:
    """Ray's ids of the restored trials whose study trial is finished: a rerun from their last checkpoint (they
    ended after Ray's snapshot, or errored) tells the study nothing new, except a resumed FAIL's outcome."""
    finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    return {trial.trial_id for trial in restored if trial.number in finished}


RECOVERED_KEY = "recovered_from"  # in a result line written back from a checkpoint: the summary it came from


def recover_ray_files(experiment: Path, restored: list[RestoredTrial]) -> list[str]:
    """Trial files the killed driver lost or cut short, written back from the newest readable checkpoint
    summary.json: params.json of a folder that no restored trial backs (or whose params.json is cut short), and
    result.json where it is cut short or behind the checkpoint (its readable lines kept, then the trial's state
    at that checkpoint as one line); not of trials that Ray runs again. Ray uploads its trial files file by file,
    overwriting in place, so a kill can empty the result.json of a trial it restores as ended. Returns the
    folders' names."""
    backed = {trial.number for trial in restored}
    live = {trial.number for trial in restored if trial.runs_again}  # Ray appends to their files again
    recovered = []
    for folder in sorted(path for path in experiment.iterdir() if path.is_dir() and path.name[:1].isdigit()):
        summary_path, summary = _newest_readable_summary(folder)
        config = (summary or {}).get("config") or {}
        if "trial_number" not in config or int(config["trial_number"]) in live:
            continue
        params = folder / "params.json"
        lost_params = not params.exists() and int(config["trial_number"]) not in backed
        if not (lost_params or (params.exists() and not _is_json(params.read_bytes()))
                or _result_file_behind(folder, summary)):
            continue
        lines = [json.dumps(row) for row in layout.recorded_results(folder)
                 if row.get("training_iteration", 0) < summary.get("epochs_trained", 0)]
        last = _summary_result(summary, summary_path)
        if int(config["trial_number"]) in backed:  # Ray ended it: a trial that the trainer did not end, Tune stopped
            last["done"] = True
        _write_atomically(folder / "result.json", "".join(f"{line}\n" for line in [*lines, json.dumps(last)]))
        if lost_params or params.exists():
            _write_atomically(params, json.dumps(config))  # last: a folder with it is a listed trial
        recovered.append(folder.name)
    return recovered


def _result_file_behind(folder: Path, summary: dict[str, Any]) -> bool:
    """Whether result.json (if there) is cut short: a line that does not read, or none as far as the checkpoint."""
    path = folder / "result.json"
    if not path.exists():
        return False
    text = path.read_text(errors="replace")
    last = text.splitlines()[-1] if text.strip() else ""
    if last and not _is_json(last.encode()):
        return True
    rows = layout.recorded_results(folder)
    return (rows[-1].get("training_iteration", 0) if rows else 0) < summary.get("epochs_trained", 0)


def _summary_result(summary: dict[str, Any], summary_path: Path) -> dict[str, Any]:
    """The result line of a trial's state at a checkpoint, from the checkpoint's summary.json."""
    metric = summary.get("metric", "val_acc")
    result = {**summary.get("metrics", {}), f"best_{metric}": summary.get("metrics", {}).get(metric),
              "best_epoch": summary.get("best_epoch"), "training_iteration": summary.get("epochs_trained", 0),
              RECOVERED_KEY: str(summary_path)}
    if summary.get(layout.FINISHED_KEY):
        result.update({layout.FINISHED_KEY: summary[layout.FINISHED_KEY], "done": True})
    return result


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _newest_readable_summary(folder: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest checkpoint's summary.json that reads whole (the kill may have cut the newest one short)."""
    for path in sorted(folder.glob(f"checkpoint_*/{layout.SUMMARY_FILE}"), reverse=True):
        try:
            return path, json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
    return None, None


def forgotten_folders(experiment: Path, restored: list[RestoredTrial]) -> list[layout.Trial]:
    """The experiment's trial folders that Ray does not restore: trials started after its last snapshot."""
    backed = {trial.number for trial in restored}
    return [t for t in layout.list_trials(experiment.parent, experiment.name) if t.number not in backed]


def ran_to_an_end(trial: layout.Trial) -> bool:
    """Whether a forgotten trial ended by itself (completed, stopped, diverged, errored): it counts as a trial of
    the experiment. One marked not resumed, now or by an earlier resume, does not: the search makes another."""
    if trial.status == layout.RUNNING:
        return False
    return trial.status != layout.ERRORED or not layout.error_line(trial.path / layout.ERROR_FILE).startswith(
        NOT_RESUMED.split(":")[0])


def mark_not_resumed(trials: list[layout.Trial]) -> None:
    """Forgotten trials that had not ended are errored in the files, with the reason, as they are FAIL in the study."""
    for trial in trials:
        if trial.status == layout.RUNNING:
            (trial.path / layout.ERROR_FILE).write_text(NOT_RESUMED + "\n")


def set_aside_unreadable_state(experiment: Path) -> None:
    """Ray copies its saved state into the folder file by file, overwriting in place: a driver killed during the
    copy can leave any of its files cut short (even ones of earlier sessions, copied again), and Ray would then
    start the whole experiment afresh, or not at all. Each newest experiment or search-generator state that does
    not read is renamed until one does, so that Ray restores the newest whole one (the functions above settle the
    rest), and a cut tuner.pkl is put back from the copy `keep_tuner_state` made. The searcher's own state is read
    with the same care (ray_adaptations._saved_searcher_state)."""
    for pattern, readable in ((EXPERIMENT_STATE_FILES, _is_json), (SEARCH_GENERATOR_STATE_FILES, _is_pickle)):
        saved = sorted(experiment.glob(pattern))
        while saved and not readable(saved[-1].read_bytes()):
            cut = saved.pop()
            cut.rename(cut.with_suffix(".unreadable"))
            logging.getLogger("ray.tune").warning(f"{cut.name} was cut short (the driver was killed while Ray "
                                                  "saved it): resuming from Ray's state before it")
    tuner, kept = experiment / TUNER_FILE, experiment / KEPT_TUNER_FILE
    if tuner.exists() and not _is_pickle(tuner.read_bytes()) and kept.exists():
        _write_atomically_bytes(tuner, kept.read_bytes())
        logging.getLogger("ray.tune").warning(f"{TUNER_FILE} was cut short (the driver was killed while Ray saved "
                                              f"it): put back from {KEPT_TUNER_FILE}")


def keep_tuner_state(experiment: Path) -> None:
    """A copy of Ray's tuner.pkl (the Tuner's settings, the same for every session of an experiment) while it
    reads whole, which `set_aside_unreadable_state` puts back where a kill cut tuner.pkl short."""
    tuner = experiment / TUNER_FILE
    if tuner.exists() and _is_pickle(data := tuner.read_bytes()):
        _write_atomically_bytes(experiment / KEPT_TUNER_FILE, data)


def _write_atomically_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:  # JSON, or its UTF-8, cut short
        return False
    return True


def _is_pickle(data: bytes) -> bool:
    """Whether data is a whole pickle (read opcode by opcode, nothing is built)."""
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError:
        return False
    return True
