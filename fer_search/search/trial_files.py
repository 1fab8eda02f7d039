"""The files one search trial keeps in its folder on the experiment's storage, and reading them back for a
resume (layout.py reads them for the analysis). Ray-free.

- `best_epoch_NNNN/` (`model.pt`, `probs.npz`): a best epoch's model file and stored probabilities, written
  through the storage's filesystem once, when that epoch becomes the best (or the first time a resumed trial of
  the older layout checkpoints): the heavy files are never written again while the best does not change.
- `checkpoint_*/` (Ray's, a copy of the directory handed to report()): `state.pt`, what `train(resume=...)` needs
  except the best epoch's model and probabilities, and `summary.json`, whose `best_dir` names the folder above.

Best folders that no kept checkpoint names (an older best, or one written just before the driver was killed)
are deleted once a newer checkpoint is reported. Checkpoints of the layout before (`checkpoint_*/best/` in
every checkpoint) still resume.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_search.data.types import FERData
from fer_search.search.layout import (BEST_DIR, BEST_DIR_KEY, BEST_PREFIX, FINISHED_KEY, MODEL_FILE, PROBS_FILE,
                                      STATE_FILE, SUMMARY_FILE)
from fer_search.search.storage import StoragePath
from fer_search.training import checkpoint
from fer_search.training.checkpoint import BestSnapshot
from fer_search.training.trainer import EpochState


def best_dir_name(epoch: int) -> str:
    return f"{BEST_PREFIX}{epoch:04d}"


class TrialFiles:
    """What one running trial has written to its folder, and writing the rest: the best epoch's folder when it
    changes, a checkpoint directory when one is due."""

    def __init__(self, trial_dir: StoragePath, data: FERData, config: dict[str, Any], metric: str,
                 resumed_best_dir: str | None = None):
        self.trial_dir = trial_dir
        self.data = data  # the validated data: its labels go beside the stored probabilities
        self.config = config
        self.metric = metric
        self.best_dir = resumed_best_dir  # the folder holding the current best epoch (None: not written yet)
        self.kept = [resumed_best_dir] if resumed_best_dir else []  # named by the newest two checkpoints

    def write_checkpoint(self, directory: Path, state: EpochState, finished_by: str | None) -> None:
        """Fill `directory` (a local temporary one that report() hands to Ray) for this epoch; write the best
        epoch's folder first if it changed, so that a checkpoint never names a folder that is not complete."""
        if state.is_best or self.best_dir is None:
            self.best_dir = write_best(self.trial_dir, state.best, self.data)
        resume = state.resume_state()
        resume["best"] = {"epoch": state.best.epoch, "metrics": state.best.metrics, "dir": self.best_dir}
        checkpoint.save(resume, directory / STATE_FILE)
        (directory / SUMMARY_FILE).write_text(json.dumps(self.summary(state, finished_by), indent=2))

    def summary(self, state: EpochState, finished_by: str | None) -> dict[str, Any]:
        best = state.best
        summary = {"family": self.config.get("family"), "point": self.config.get("point"),
                   "arch": self.config.get("arch"), "config": self.config, "metric": self.metric,
                   "best_epoch": best.epoch, BEST_DIR_KEY: self.best_dir, "epochs_trained": state.epoch,
                   "metrics": best.metrics}
        if finished_by:
            summary[FINISHED_KEY] = finished_by
        return summary

    def reported(self) -> None:
        """After Ray took the checkpoint: delete best folders that neither it nor the one before names (Ray keeps
        those two checkpoints)."""
        self.kept = (self.kept + [self.best_dir])[-2:]
        for folder in self.trial_dir.glob(f"{BEST_PREFIX}*"):
            if folder.name not in self.kept:
                folder.delete_dir()


def write_best(trial_dir: StoragePath, best: BestSnapshot, data: FERData) -> str:
    """The best epoch's model file and probabilities in their own folder; returns the folder's name."""
    name = best_dir_name(best.epoch)
    folder = trial_dir / name
    model = io.BytesIO()
    torch.save(best.entry, model)
    (folder / MODEL_FILE).write_bytes(model.getvalue())
    probs = {"val_probs": best.val_probs, "val_labels": data.val.labels, "val_ids": data.val.ids}
    if best.test_probs is not None:
        probs.update(test_probs=best.test_probs, test_labels=data.test.labels, test_ids=data.test.ids)
    packed = io.BytesIO()
    np.savez_compressed(packed, **probs)
    (folder / PROBS_FILE).write_bytes(packed.getvalue())
    return name


def load_checkpoint(directory: str | Path, trial_dir: StoragePath) -> dict[str, Any]:
    """A checkpoint directory (and the trial folder whose best folder it names) -> the `resume` argument of
    train(), with `resume["best"]["dir"]` the name of that folder (None for a checkpoint of the older layout)."""
    directory = Path(directory)
    resume = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    inside = directory / BEST_DIR
    if inside.is_dir():  # the older layout: the best epoch's files in every checkpoint, no folder of their own yet
        best_folder, resume["best"]["dir"] = StoragePath.of(inside), None
    else:
        best_folder = trial_dir / resume["best"]["dir"]
    with np.load((best_folder / PROBS_FILE).open_bytes()) as probs:
        resume["best"].update(
            entry=checkpoint.load(best_folder / MODEL_FILE),
            val_probs=torch.from_numpy(probs["val_probs"]),
            test_probs=torch.from_numpy(probs["test_probs"]) if "test_probs" in probs else None,
        )
    return resume
