"""Every on-disk format of a training run (nanoGPT-style: one torch.save of plain types and tensors).

- The model file (`model_entry`, `save`, `load`): self-describing. It holds everything `evaluate`/`predict` need: architecture, hyperparameters, class names,
normalisation, weights, and the metrics at its epoch. An ensemble file holds a list of model entries
plus vote weights, temperature and the test-time augmentation setting. Both load with
`torch.load(weights_only=True)`: no pickled code.
- The resume state (`resume_state`, `restore`): where a run stands after an epoch (`RunState`: its history, best
  epoch and early-stopping count) with the optimiser, schedule, EMA and every random generator, so that a
  resumed run continues exactly. A search trial's checkpoint (fer_search/search/trial_files.py) stores it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fer_search.data.types import CLASS_NAMES
from fer_search.errors import UserError

if TYPE_CHECKING:
    from fer_search.training.learner import Learner

MODEL_FORMAT = "fer_search.model/1"
ENSEMBLE_FORMAT = "fer_search.ensemble/1"


def model_entry(
    arch: str,
    model_hparams: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    normalization: tuple[float, float],
    *,
    config: dict[str, Any] | None = None,
    epoch: int | None = None,
    metrics: dict[str, float] | None = None,
    tta: str = "none",
    crop: int = 0,
    val_split: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "arch": arch,
        "model_hparams": dict(model_hparams),
        "config": dict(config or {}),
        "class_names": list(CLASS_NAMES),
        "normalization": {"mean": float(normalization[0]), "std": float(normalization[1])},
        "tta": tta,
        "crop": int(crop),  # evaluated on centre (or ten) crops of this side; 0 = whole image
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "epoch": epoch,
        "metrics": dict(metrics or {}),
        # The validation split the epoch was chosen on (load_data's seed, fraction, drop_test_copies, and the ids'
        # hash): `evaluate --split val` carves the same one, or refuses.
        "val_split": dict(val_split or {}),
    }


def ensemble_entry(
    members: list[dict[str, Any]], weights: list[float], temperature: float, tta: str = "none",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if len(members) != len(weights) or not members:
        raise ValueError("an ensemble needs one weight per member and at least one member")
    names = {tuple(m["class_names"]) for m in members}
    if len(names) != 1:
        raise UserError(f"ensemble members disagree on class names: {sorted(names)}")
    return {
        "format": ENSEMBLE_FORMAT,
        "members": members,
        "weights": [float(w) for w in weights],
        "temperature": float(temperature),
        "tta": tta,
        "class_names": list(names.pop()),
        "metadata": dict(metadata or {}),
    }


def recorded_val_split(entry: dict[str, Any]) -> dict[str, Any]:
    """The validation split a model or ensemble file was chosen on; empty where it records none (a file made
    before files recorded it, or members that disagree). A refit model trained on that split: {"refit": True}."""
    members = entry["members"] if entry.get("format") == ENSEMBLE_FORMAT else [entry]
    if any("refit" in member for member in members):
        return {"refit": True}
    splits = [member.get("val_split") or {} for member in members]
    return splits[0] if all(split == splits[0] for split in splits) else {}


def save(entry: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(entry, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written model file
    return path


def load(path: str | Path) -> dict[str, Any]:
    """A model or ensemble file: a local path, or a file on a search's storage (an object with is_file() and
    read_bytes(), such as fer_search.search.storage.StoragePath, which may be in a bucket)."""
    path = path if hasattr(path, "read_bytes") else Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        entry = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for truncated or foreign files
        # Not torch's message: it advises loading with weights_only=False, i.e. running the file's code.
        raise UserError(f"{path}: not a fer_search model or ensemble file (it does not load as one)") from None
    if not isinstance(entry, dict) or entry.get("format") not in (MODEL_FORMAT, ENSEMBLE_FORMAT):
        raise UserError(f"{path}: not a fer_search model or ensemble file (no known 'format' field)")
    return entry


@dataclass
class BestSnapshot:
    """The best epoch so far by the selection metric: what a trial keeps."""

    epoch: int
    metrics: dict[str, float]
    entry: dict[str, Any]  # model_entry of that epoch
    val_probs: np.ndarray
    test_probs: np.ndarray | None


@dataclass
class RunState:
    """Where a run stands after its last finished epoch (all of it goes into the resume state)."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: BestSnapshot | None = None
    bad_epochs: int = 0  # epochs since the best one, for early stopping

    def record(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        self.epoch = epoch
        self.history.append(metrics)
        self.bad_epochs = 0 if is_best else self.bad_epochs + 1


def resume_state(learner: "Learner", run: RunState) -> dict[str, Any]:
    """Everything `restore` needs to continue the run exactly where it stands (tensors and plain types)."""
    best = run.best
    numpy_rng = np.random.get_state()
    return {
        "model": {k: v.detach().cpu().clone() for k, v in learner.network.state_dict().items()},
        "ema": None if learner.ema is None else {k: v.detach().cpu().clone() for k, v in learner.ema.state_dict().items()},
        "optimizer": learner.optimizer.state_dict(),
        "scheduler": learner.scheduler.state_dict() if learner.scheduler is not None else None,
        "steps_done": learner.steps_done,
        "generator": learner.generator.get_state().cpu(),
        "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
        "cuda_rng": torch.cuda.get_rng_state() if learner.generator.device.type == "cuda" else None,
        "numpy_rng": {"keys": torch.from_numpy(numpy_rng[1].astype(np.int64)), "pos": int(numpy_rng[2]),
                      "has_gauss": int(numpy_rng[3]), "gauss": float(numpy_rng[4])},  # timm's Mixup
        "epoch": run.epoch,
        "history": list(run.history),
        "bad_epochs": run.bad_epochs,
        "best": {
            "epoch": best.epoch,
            "metrics": best.metrics,
            "entry": best.entry,
            "val_probs": torch.from_numpy(best.val_probs),
            "test_probs": None if best.test_probs is None else torch.from_numpy(best.test_probs),
        },
    }


def restore(state: dict[str, Any], learner: "Learner") -> RunState:
    """Puts a `resume_state` back into `learner` (weights, optimiser, schedule, generators) -> where the run stood."""
    learner.network.load_state_dict(state["model"])
    if learner.ema is not None:
        learner.ema.load_state_dict(state["ema"])
    learner.optimizer.load_state_dict(state["optimizer"])
    if learner.scheduler is not None:
        learner.scheduler.load_state_dict(state["scheduler"])
    learner.steps_done = state["steps_done"]
    generator = learner.generator
    generator.set_state(state["generator"].to(generator.get_state().device))
    torch.set_rng_state(state["torch_rng"])
    if generator.device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"])
    rng = state["numpy_rng"]
    np.random.set_state(("MT19937", rng["keys"].numpy().astype(np.uint32), rng["pos"], rng["has_gauss"], rng["gauss"]))
    best = state["best"]
    test = best["test_probs"]
    snapshot = BestSnapshot(best["epoch"], best["metrics"], best["entry"], best["val_probs"].numpy(),
                            None if test is None else test.numpy())
    return RunState(state["epoch"], list(state["history"]), snapshot, state["bad_epochs"])
