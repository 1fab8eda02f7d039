"""One search trial, without Ray: train a configuration, report every epoch with a checkpoint
directory, keep the best epoch's files. ray_tune.py wraps it into a Ray trainable.

A checkpoint directory (see layout.py) holds `state.pt` and `best/`. The best epoch's model and
probabilities are stored once, in `best/`, and left out of `state.pt`: `load_checkpoint` puts the
two back together for `train(resume=...)`.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from fer_search.data.types import FERData
from fer_search.search.layout import (BEST_DIR, DEVICE_KEY, DIVERGED_BY, FINISHED_KEY, MODEL_FILE, PROBS_FILE,
                                      STATE_FILE, SUMMARY_FILE)
from fer_search.search.sampler import META_KEYS
from fer_search.search.tensorboard import TrialBoard
from fer_search.training import EpochState, TrainConfig, TrainingDiverged, checkpoint, train
from fer_search.training.trainer import resolve_device

# (metrics, checkpoint directory or None); the directory may go once it returns.
Report = Callable[[dict[str, Any], str | None], None]


def run_trial(config: dict[str, Any], data: FERData, *, report: Report, log_dir: str,
              resume: dict[str, Any] | None = None, device: str = "auto") -> None:
    with warnings.catch_warnings():
        # Arrays from Ray's object store are read-only views, shared by every trial on the node;
        # the trainer only reads them, so torch's "not writable" warning does not apply.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        warnings.filterwarnings("ignore", message="imbalance=both")  # the documented v3 point; its config says so
        _run(config, data, report, log_dir, resume, device)


def _run(config, data, report, log_dir, resume, device) -> None:
    train_config = TrainConfig.from_flat({k: v for k, v in config.items() if k not in META_KEYS})
    objective = f"best_{train_config.metric}"
    device_name = describe_device(resolve_device(device))
    board = TrialBoard(log_dir, config)
    # The overfit check validates on its own training images: their labels go beside the stored probabilities.
    validated = data.overfit_check(train_config.overfit_images, train_config.seed) if train_config.overfit_images else data

    def on_epoch(metrics: dict[str, float], state: EpochState) -> None:
        finished_by = state.finished_by
        result = {**metrics, objective: state.best.metrics[train_config.metric], "best_epoch": state.best.epoch,
                  DEVICE_KEY: device_name}
        if finished_by:
            result[FINISHED_KEY] = finished_by
        board.log_epoch(metrics, state.best.metrics, state.is_best, state.best.val_probs, validated.val.labels)
        directory = Path(tempfile.mkdtemp(prefix="fer_search_checkpoint_"))
        try:
            write_checkpoint(directory, state, validated, config, train_config.metric, finished_by)
            report(result, str(directory))
        finally:
            shutil.rmtree(directory, ignore_errors=True)

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


def write_checkpoint(directory: Path, state: EpochState, data: FERData, config: dict[str, Any], metric: str,
                     finished_by: str | None) -> None:
    best = state.best
    resume = state.resume_state()
    resume["best"] = {"epoch": best.epoch, "metrics": best.metrics}  # the rest is in best/
    checkpoint.save(resume, directory / STATE_FILE)
    best_dir = directory / BEST_DIR
    checkpoint.save(best.entry, best_dir / MODEL_FILE)
    probs = {"val_probs": best.val_probs, "val_labels": data.val.labels, "val_ids": data.val.ids}
    if best.test_probs is not None:
        probs.update(test_probs=best.test_probs, test_labels=data.test.labels, test_ids=data.test.ids)
    np.savez_compressed(best_dir / PROBS_FILE, **probs)
    summary = {"family": config.get("family"), "point": config.get("point"), "arch": config.get("arch"),
               "config": config, "metric": metric, "best_epoch": best.epoch, "epochs_trained": state.epoch,
               "metrics": best.metrics}
    if finished_by:
        summary[FINISHED_KEY] = finished_by
    (best_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """A checkpoint directory -> the `resume` argument of train()."""
    directory = Path(directory)
    resume = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    probs = np.load(directory / BEST_DIR / PROBS_FILE)
    resume["best"].update(
        entry=checkpoint.load(directory / BEST_DIR / MODEL_FILE),
        val_probs=torch.from_numpy(probs["val_probs"]),
        test_probs=torch.from_numpy(probs["test_probs"]) if "test_probs" in probs else None,
    )
    return resume
