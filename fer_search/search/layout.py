"""The files of a search, read without Ray: experiments under a storage folder, trials, their results.

`STORAGE/NAME/` is one experiment; STORAGE is a local folder or a URI (s3://, gs://, ...): every file is
read through its pyarrow filesystem (storage.py). Each trial directory holds Ray's `params.json` (the
trial's flat configuration), `result.json` (one JSON line per epoch; the trainer's last epoch has
`finished_by`, a trial Tune stopped ends with a `done: true` line), `progress.csv`, `error.txt` if it
failed, TensorBoard event files, the best epoch's folder `best_epoch_NNNN/` (`model.pt`, `probs.npz`;
see trial_files.py) and Ray's two newest checkpoints `checkpoint_*/` (`state.pt`, the resume state, and
`summary.json`, whose `best_dir` names the best epoch's folder). Experiments of the older layout kept
`best/` (`model.pt`, `probs.npz`, `summary.json`) inside every checkpoint; they are read as well.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_search.errors import UserError
from fer_search.search.storage import StoragePath

if TYPE_CHECKING:
    import pandas as pd

STATE_FILE = "state.pt"
BEST_PREFIX = "best_epoch_"  # + the epoch: the folder of a best epoch's model.pt and probs.npz
BEST_DIR_KEY = "best_dir"  # in a checkpoint's summary.json: the name of that folder
BEST_DIR = "best"  # the older layout: the best epoch's files inside every checkpoint
MODEL_FILE = "model.pt"
PROBS_FILE = "probs.npz"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"  # Ray's, in a failed trial's directory: the traceback
FINISHED_KEY = "finished_by"  # in the last result of a trial the trainer ended itself: "max_epochs" | "early_stopping"
NODE_KEY = "node_id"  # in every result: the Ray node that ran the epoch
DEVICE_KEY = "device"  # in every result: what the trial trained on ("cpu", "cuda:0 (NVIDIA H200)")
THREADS_KEY = "cpu_threads"  # in every result: torch's CPU threads, set from the trial's CPU share
DIVERGED_BY = "diverged"  # FINISHED_KEY of a trial whose training loss became non-finite (a failed trial)

COMPLETED, STOPPED, ERRORED, RUNNING, DIVERGED = "completed", "stopped early", "errored", "running", "diverged"


def trial_name(trial) -> str:
    """"003_resnet_tpe": creation order, family, documented point or tpe (a Ray trial's directory and display
    name; `trial` has the search's flat `config`)."""
    config = trial.config
    return f"{config['trial_number']:03d}_{config['family']}_{config['point']}"


def short_node_id(node_id: str) -> str:
    """The leading hex digits of a Ray node id: enough to tell a cluster's nodes apart."""
    return node_id[:8]


@dataclass
class Trial:
    experiment: str
    path: StoragePath
    config: dict[str, Any]
    last_result: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """The trial directory's name: "<number>_<family>_<point>", e.g. "003_resnet_tpe"."""
        return self.path.name

    @property
    def number(self) -> int:
        """Creation order within the experiment (Optuna's trial number)."""
        return int(self.config.get("trial_number", -1))

    @property
    def trial_id(self) -> str:
        """Ray's id (empty before the first result)."""
        return self.last_result.get("trial_id", "")

    @property
    def family(self) -> str:
        return self.config.get("family", "")

    @property
    def point(self) -> str:
        """The documented point's name, or "tpe"."""
        return self.config.get("point", "")

    @property
    def finished_by(self) -> str | None:
        return self.last_result.get(FINISHED_KEY)

    @property
    def status(self) -> str:
        """completed (the trainer ended it), stopped early (ASHA or the time budget), diverged (its loss
        became non-finite), errored, running (or interrupted: a search killed mid-trial looks the same
        until `--resume` finishes it)."""
        # The trainer marks a trial's last epoch (finished_by); a trial Tune stopped (ASHA, the time
        # budget) has a `done` line without it.
        if self.finished_by == DIVERGED_BY:
            return DIVERGED
        if self.finished_by:
            return COMPLETED
        if self.last_result.get("done"):
            return STOPPED
        if (self.path / ERROR_FILE).is_file():
            return ERRORED
        return RUNNING

    def failure(self) -> str | None:
        """Why a diverged or errored trial failed, in one line (None for the others)."""
        if self.status == DIVERGED:
            return diverged_line(self.last_result)
        if self.status == ERRORED:
            return f"{error_line(self.path / ERROR_FILE)} (full log: {self.path / ERROR_FILE})"
        return None

    @property
    def device(self) -> str:
        return self.last_result.get(DEVICE_KEY, "")

    @property
    def epochs(self) -> int:
        return int(self.last_result.get("training_iteration", 0))

    @cached_property
    def results(self) -> list[dict[str, Any]]:
        """Every result so far (Ray's result.json), one per epoch."""
        return recorded_results(self.path)

    @property
    def nodes(self) -> list[str]:
        """The Ray nodes its epochs ran on, in order: two for a trial restored elsewhere after losing its node."""
        return list(dict.fromkeys(row[NODE_KEY] for row in self.results if row.get(NODE_KEY)))

    @cached_property
    def epoch_table(self) -> pd.DataFrame:
        """One row per epoch (Ray's progress.csv); empty before the first epoch."""
        import pandas as pd  # here: listing trials (`run`'s outcome, `--resume`) needs no pandas

        try:
            return pd.read_csv((self.path / "progress.csv").open_bytes())
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return pd.DataFrame()

    @cached_property
    def summary_path(self) -> StoragePath | None:
        """summary.json of the newest checkpoint that has one (a checkpoint Ray is still copying may not yet)."""
        for checkpoint in reversed(self.path.glob("checkpoint_*")):
            for path in (checkpoint / SUMMARY_FILE, checkpoint / BEST_DIR / SUMMARY_FILE):
                if path.is_file():
                    return path
        return None

    def summary(self) -> dict[str, Any] | None:
        """The best epoch so far: config, family, point, metric, best_epoch, best_dir, epochs_trained, metrics at
        the best epoch (val_* and, reported only, test_*), finished_by (absent unless the trainer ended it)."""
        path = self.summary_path
        return json.loads(path.read_text()) if path is not None else None

    @cached_property
    def best_dir(self) -> StoragePath | None:
        """The folder of the best epoch's model.pt and probs.npz (None before the first checkpoint)."""
        path = self.summary_path
        if path is None or path.parent.name == BEST_DIR:  # the older layout: the summary sits beside them
            return path.parent if path is not None else None
        try:
            name = json.loads(path.read_text()).get(BEST_DIR_KEY)
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            return None
        return self.path / name if name else None

    def _best_file(self, name: str) -> StoragePath | None:
        path = self.best_dir / name if self.best_dir is not None else None
        return path if path is not None and path.is_file() else None

    @property
    def model_path(self) -> StoragePath | None:
        """model.pt: the self-describing model file of the best epoch (load_predictor reads it)."""
        return self._best_file(MODEL_FILE)

    @property
    def probs_path(self) -> StoragePath | None:
        """probs.npz: val_probs, val_labels, val_ids, test_probs, test_labels, test_ids."""
        return self._best_file(PROBS_FILE)


def experiment_started(storage: str | Path | StoragePath, name: str) -> bool:
    """Whether Ray started experiment `name` (its tuner.pkl, which `--resume` restores, is there)."""
    return (StoragePath.of(storage) / name / "tuner.pkl").is_file()


def check_can_start(storage: str | Path | StoragePath, name: str, *, resume: bool) -> None:
    """A new search must not write over a started experiment (its record, study and trials); a resume needs one."""
    started = experiment_started(storage, name)
    if resume and not started:
        raise UserError(f"nothing to resume at {StoragePath.of(storage) / name}: no search was started there "
                        "(check --storage and --name)")
    if not resume and started:
        raise UserError(f"experiment {StoragePath.of(storage) / name} exists already; add --resume to continue it, "
                        "or pick another --name")


def list_experiments(storage: str | Path | StoragePath) -> list[str]:
    """Names of the experiments under `storage` (folders holding trial directories), oldest first."""
    root = StoragePath.of(storage)
    if not root.is_dir():
        raise UserError(f"storage folder {root} does not exist (run a search first, or pass --storage)")
    found = [p for p in root.iterdir() if p.is_dir() and p.glob("*/params.json")]
    return [p.name for p in sorted(found, key=_changed)]


def _changed(experiment: StoragePath) -> float:
    """When an experiment last changed; a bucket keeps no time for folders: then when Ray started it."""
    return experiment.mtime() or (experiment / "tuner.pkl").mtime()


def list_trials(storage: str | Path | StoragePath, name: str) -> list[Trial]:
    """The trials of experiment `name`, in the order the search created them."""
    experiment = StoragePath.of(storage) / name
    if not experiment.is_dir():
        known = ", ".join(list_experiments(storage)) if StoragePath.of(storage).is_dir() else ""
        raise UserError(f"no experiment '{name}' under {StoragePath.of(storage)}"
                        + (f" (found: {known})" if known else ""))
    trials = []
    for params in experiment.glob("*/params.json"):
        directory = params.parent
        try:
            config = json.loads(params.read_text())
        except json.JSONDecodeError:
            continue  # written at trial start; a torn file means the trial never ran
        results = recorded_results(directory)
        trials.append(Trial(name, directory, config, results[-1] if results else {}))
    return sorted(trials, key=lambda t: (t.number, t.name))


def error_line(path: Path | StoragePath) -> str:
    """The real error of a failed trial: the last line of Ray's traceback file, without its colour codes
    and the exception's module path ("UserError: ...", not "fer_search.errors.UserError: ...")."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "failed (no error.txt was written)"
    last = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip() if lines else "failed"
    return re.sub(r"^[\w.]+\.(\w+(Error|Exception)\b)", r"\1", last)


def diverged_line(result: dict[str, Any]) -> str:
    loss = result.get("train_loss")
    shown = f"{loss:.4g}" if isinstance(loss, float) else loss
    return f"diverged in epoch {result.get('epoch')} (train loss {shown})"


def recorded_results(trial_dir: Path | StoragePath) -> list[dict[str, Any]]:
    """Every result of a trial, oldest first (Ray's result.json, one JSON line per result; a line cut
    short by an interrupted write is left out)."""
    try:
        lines = (StoragePath.of(trial_dir) / "result.json").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    results = []
    for line in lines:
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return results
