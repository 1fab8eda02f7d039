"""One search trial, without Ray: train a configuration, report every epoch, checkpoint when one is due, keep
the best epoch's files (trial_files.py). ray_tune.py wraps it into a Ray trainable.

A checkpoint costs a full resume state (model, EMA, optimiser, random states: ~180 MB for ResNet18 with AdamW
and EMA), which Ray copies to storage while the trial waits. So a trial checkpoints on a new best epoch, on its
last epoch, and otherwise every `checkpoint_every` epochs (None: once a minute or more has passed since its last
checkpoint, i.e. every ceil(60 s / epoch time) epochs); a resume retrains at most those epochs.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from fer_search.data.types import FERData
from fer_search.search.layout import DEVICE_KEY, DIVERGED_BY, FINISHED_KEY
from fer_search.search.sampler import META_KEYS
from fer_search.search.storage import StoragePath
from fer_search.search.tensorboard import TrialBoard
from fer_search.search.trial_files import TrialFiles
from fer_search.training import EpochState, TrainConfig, TrainingDiverged, train
from fer_search.training.trainer import resolve_device

# (metrics, checkpoint directory or None); the directory may go once it returns.
Report = Callable[[dict[str, Any], str | None], None]

CHECKPOINT_INTERVAL_S = 60.0  # the default: at most one periodic checkpoint a minute


class CheckpointPolicy:
    """Whether an epoch ends with a checkpoint: a new best epoch and the last epoch always do; otherwise every
    `every` epochs, or with every=None, once CHECKPOINT_INTERVAL_S or more have passed since the last one."""

    def __init__(self, every: int | None, last_epoch: int = 0, interval_s: float = CHECKPOINT_INTERVAL_S):
        self.every = every
        self.interval_s = interval_s
        self.last_epoch = last_epoch
        self.last_time = time.monotonic()

    def due(self, epoch: int, is_best: bool, last: bool) -> bool:
        now = time.monotonic()
        if self.every:
            periodic = epoch - self.last_epoch >= self.every
        else:
            periodic = now - self.last_time >= self.interval_s
        if not (is_best or last or periodic):
            return False
        self.last_epoch, self.last_time = epoch, now
        return True


def run_trial(config: dict[str, Any], data: FERData, *, report: Report, log_dir: str, trial_dir: StoragePath,
              resume: dict[str, Any] | None = None, device: str = "auto", checkpoint_every: int | None = None) -> None:
    """Train `config`, reporting every epoch; `trial_dir` is the trial's folder on the experiment's storage,
    where the best epoch's files go (trial_files.py)."""
    with warnings.catch_warnings():
        # Arrays from Ray's object store are read-only views, shared by every trial on the node;
        # the trainer only reads them, so torch's "not writable" warning does not apply.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        _run(config, data, report, log_dir, trial_dir, resume, device, checkpoint_every)


def _run(config, data, report, log_dir, trial_dir, resume, device, checkpoint_every) -> None:
    train_config = TrainConfig.from_flat({k: v for k, v in config.items() if k not in META_KEYS})
    objective = f"best_{train_config.metric}"
    device_name = describe_device(resolve_device(device))
    board = TrialBoard(log_dir, config)
    # The overfit check validates on its own training images: their labels go beside the stored probabilities.
    validated = data.overfit_check(train_config.overfit_images, train_config.seed) if train_config.overfit_images else data
    files = TrialFiles(trial_dir, validated, config, train_config.metric,
                       resumed_best_dir=resume["best"].get("dir") if resume else None)
    policy = CheckpointPolicy(checkpoint_every, last_epoch=resume["epoch"] if resume else 0)

    def on_epoch(metrics: dict[str, float], state: EpochState) -> None:
        finished_by = state.finished_by
        result = {**metrics, objective: state.best.metrics[train_config.metric], "best_epoch": state.best.epoch,
                  DEVICE_KEY: device_name}
        if finished_by:
            result[FINISHED_KEY] = finished_by
        board.log_epoch(metrics, state.best.metrics, state.is_best, state.best.val_probs, validated.val.labels)
        if not policy.due(state.epoch, state.is_best, last=finished_by is not None):
            report(result, None)
            return
        directory = Path(tempfile.mkdtemp(prefix="fer_search_checkpoint_"))
        try:
            files.write_checkpoint(directory, state, finished_by)
            report(result, str(directory))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        files.reported()

    try:
        train(train_config, data, device=device, on_epoch=on_epoch, resume=resume, progress=False)
    except TrainingDiverged as diverged:
        # A result, not an error: the trial has ended for good (a resume would only diverge again), and
        # the searcher tells Optuna it failed. The objective is NaN: ASHA's cut-offs skip it.
        report({"epoch": diverged.epoch, "train_loss": diverged.loss, objective: float("nan"),
                FINISHED_KEY: DIVERGED_BY, DEVICE_KEY: device_name}, None)
    finally:
        board.close()


def describe_device(device: torch.device) -> str:
    """"cpu", or "cuda:0 (NVIDIA H200)": what a trial trained on, for its results and the leaderboard."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
