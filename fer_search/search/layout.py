"""The files of a search, read without Ray: experiments under a storage folder, trials, their results.

`STORAGE/NAME/` is one experiment. Each trial directory holds Ray's `params.json` (the trial's flat
configuration), `result.json` (one JSON line per epoch; the last has `done: true` once the trial has
ended), `progress.csv`, `error.txt` if it failed, TensorBoard event files, and the newest Ray
checkpoint `checkpoint_*/` with `state.pt` (resume state) and `best/` (`model.pt`, `probs.npz`,
`summary.json`) for the best epoch by the validation metric.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from fer_search.errors import UserError

STATE_FILE = "state.pt"
BEST_DIR = "best"
MODEL_FILE = "model.pt"
PROBS_FILE = "probs.npz"
SUMMARY_FILE = "summary.json"
FINISHED_KEY = "finished_by"  # in the last result of a trial the trainer ended itself: "max_epochs" | "early_stopping"
NODE_KEY = "node_id"  # in every result: the Ray node that ran the epoch

COMPLETED, STOPPED, ERRORED, RUNNING = "completed", "stopped early", "errored", "running"


def short_node_id(node_id: str) -> str:
    """The leading hex digits of a Ray node id: enough to tell a cluster's nodes apart."""
    return node_id[:8]


@dataclass
class Trial:
    experiment: str
    path: Path
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
        """completed (the trainer ended it), stopped early (ASHA or the time budget), errored, running
        (or interrupted: a search killed mid-trial looks the same until `--resume` finishes it)."""
        if self.last_result.get("done"):
            return COMPLETED if self.finished_by else STOPPED
        if (self.path / "error.txt").exists():
            return ERRORED
        return RUNNING

    @property
    def epochs(self) -> int:
        return int(self.last_result.get("training_iteration", 0))

    @cached_property
    def results(self) -> list[dict[str, Any]]:
        """Every result so far (Ray's result.json), one per epoch."""
        return _results(self.path / "result.json")

    @property
    def nodes(self) -> list[str]:
        """The Ray nodes its epochs ran on, in order: two for a trial restored elsewhere after losing its node."""
        return list(dict.fromkeys(row[NODE_KEY] for row in self.results if row.get(NODE_KEY)))

    @cached_property
    def progress(self) -> pd.DataFrame:
        """One row per epoch (Ray's progress.csv); empty before the first epoch."""
        path = self.path / "progress.csv"
        try:
            return pd.read_csv(path)
        except (FileNotFoundError, pd.errors.EmptyDataError):
            return pd.DataFrame()

    @property
    def checkpoint_dir(self) -> Path | None:
        found = sorted(self.path.glob("checkpoint_*"))
        return found[-1] if found else None

    def _best_file(self, name: str) -> Path | None:
        directory = self.checkpoint_dir
        path = directory / BEST_DIR / name if directory is not None else None
        return path if path is not None and path.is_file() else None

    @property
    def model_path(self) -> Path | None:
        """best/model.pt: the self-describing model file of the best epoch (load_predictor reads it)."""
        return self._best_file(MODEL_FILE)

    @property
    def probs_path(self) -> Path | None:
        """best/probs.npz: val_probs, val_labels, val_ids, test_probs, test_labels, test_ids."""
        return self._best_file(PROBS_FILE)

    @property
    def summary_path(self) -> Path | None:
        return self._best_file(SUMMARY_FILE)

    def summary(self) -> dict[str, Any] | None:
        """best/summary.json: config, family, point, metric, best_epoch, epochs_trained, metrics at the
        best epoch (val_* and, reported only, test_*), finished_by (absent unless the trainer ended it)."""
        path = self.summary_path
        return json.loads(path.read_text()) if path is not None else None


def list_experiments(storage: str | Path) -> list[str]:
    """Names of the experiments under `storage` (folders holding trial directories), oldest first."""
    root = Path(storage)
    if not root.is_dir():
        raise UserError(f"storage folder {root} does not exist (run a search first, or pass --storage)")
    found = [p for p in root.iterdir() if p.is_dir() and any(p.glob("*/params.json"))]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]


def list_trials(storage: str | Path, name: str) -> list[Trial]:
    """The trials of experiment `name`, in the order the search created them."""
    experiment = Path(storage) / name
    if not experiment.is_dir():
        known = ", ".join(list_experiments(storage)) if Path(storage).is_dir() else ""
        raise UserError(f"no experiment '{name}' under {storage}" + (f" (found: {known})" if known else ""))
    trials = []
    for params in experiment.glob("*/params.json"):
        directory = params.parent
        try:
            config = json.loads(params.read_text())
        except json.JSONDecodeError:
            continue  # written at trial start; a torn file means the trial never ran
        trials.append(Trial(name, directory, config, _last_result(directory / "result.json")))
    return sorted(trials, key=lambda t: (t.number, t.name))


def _last_result(path: Path) -> dict[str, Any]:
    rows = _results(path)
    return rows[-1] if rows else {}


def _results(path: Path) -> list[dict[str, Any]]:
    """The rows of a result.json, one per epoch."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted write
    return rows
