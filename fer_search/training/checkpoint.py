"""Self-describing model files (nanoGPT-style): one torch.save of plain types and tensors.

A model file holds everything `evaluate`/`predict` need: architecture, hyperparameters, class names,
normalisation, weights, and the metrics at its epoch. An ensemble file holds a list of model entries
plus vote weights, temperature and the test-time augmentation setting. Both load with
`torch.load(weights_only=True)`: no pickled code.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from fer_search.data.types import CLASS_NAMES
from fer_search.errors import UserError

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
