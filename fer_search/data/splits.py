"""Carving a stratified, seeded validation split out of train, with exact duplicates kept together,
and dropping from train the images that also sit in the held-out splits.

Hand-rolled rather than sklearn's train_test_split: it has no minimum of two images per class
(FER-like subsets can have a lone disgust image) and keeps sklearn's import time off every load.
FER2013's train split holds over a thousand exact copies: a copy on each side of the carve would let
validation reward memorisation, so each group of identical images goes to one side whole.
"""
from __future__ import annotations

import dataclasses
import hashlib

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


def image_digests(images: np.ndarray) -> np.ndarray:
    """A 128-bit digest of each image's bytes: equal digests are identical images."""
    return np.array([hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images], dtype="S16")


def grouped_stratified_indices(labels: np.ndarray, groups: np.ndarray, fraction: float,
                               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """stratified_indices over groups of identical images (stratified by each group's first label):
    every group lands on one side whole, so the held-out share is `fraction` of the groups."""
    _, first, group_of = np.unique(groups, return_index=True, return_inverse=True)
    _, held_groups = stratified_indices(labels[first], fraction, seed)
    held = np.isin(group_of, held_groups)
    return np.flatnonzero(~held), np.flatnonzero(held)


def drop_held_out_copies(data: FERData) -> FERData:
    """Train without the images that also appear in test (or in a validation split the source brought):
    a model that memorised them would score them from memory. The count goes into data.report."""
    if data.train is None:
        return data
    held = [s for s in ((data.val if data.val is not None else None), data.test) if s is not None and len(s)]
    if not held:
        return data
    outside = np.concatenate([image_digests(s.images) for s in held])
    copies = np.isin(image_digests(data.train.images), outside)
    report = dataclasses.replace(data.report, dropped_held_out_copies=int(copies.sum()))
    return dataclasses.replace(data, train=data.train.subset(np.flatnonzero(~copies)), report=report)


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
    keep, held_out = grouped_stratified_indices(data.train.labels, image_digests(data.train.images), val_fraction, seed)
    if len(keep) == 0:
        raise UserError(f"{data.name}: val_fraction={val_fraction} leaves no training images")
    train: Split = data.train
    return dataclasses.replace(data, train=train.subset(keep), val=train.subset(held_out))
