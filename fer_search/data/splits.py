"""Carving a stratified, seeded validation split out of train.

Hand-rolled rather than sklearn's train_test_split: it has no minimum of two images per class
(FER-like subsets can have a lone disgust image) and keeps sklearn's import time off every load.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from fer_search.data.types import FERData, Split
from fer_search.errors import UserError


def stratified_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (keep, held_out) sorted index arrays; held_out has round(fraction * N) items (at least 1),
    spread over the classes in proportion (largest remainder), each class shuffled with `seed`."""
    n_held = max(1, round(fraction * len(labels)))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n_held / len(labels))
    take = np.floor(quota).astype(int)
    # Give the leftover items to the classes with the largest fractional remainder (ties: class order).
    leftover = n_held - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    held_out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(labels)), held_out)
    return keep, held_out


def carve_validation(data: FERData, val_fraction: float, seed: int) -> FERData:
    """val = a stratified `val_fraction` of train unless the source brought its own val split;
    val_fraction=0 means no carve (val stays None), as the audit wants the uncarved train."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if data.val is not None or data.train is None or val_fraction == 0:
        return data
    if len(data.train) < 2:
        raise UserError(f"{data.name}: train has {len(data.train)} image(s), too few to carve a validation split "
                        f"(val_fraction={val_fraction})")
    keep, held_out = stratified_indices(data.train.labels, val_fraction, seed)
    if len(keep) == 0:
        raise UserError(f"{data.name}: val_fraction={val_fraction} leaves no training images")
    train: Split = data.train
    return dataclasses.replace(data, train=train.subset(keep), val=train.subset(held_out))
