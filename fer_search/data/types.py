"""Containers for decoded FER2013 data: uint8 48x48 images, FER2013 class ids."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# FER2013's `emotion` column order. Folder names sort differently; ids always follow this tuple.
CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 48
VAL_FRACTION = 0.1  # of train, stratified and seeded, where the source has no validation split
UNLABELED = -1


@dataclass
class Split:
    """One split. images: (N, 48, 48) uint8; labels: (N,) int64, UNLABELED (-1) where unknown;
    ids: (N,) str, a stable name per image (relative file path, or CSV row number)."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, 48, 48) uint8, got {self.images.shape} {self.images.dtype}")
        if len(self.labels) != n or len(self.ids) != n:
            raise ValueError("images, labels and ids must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labeled(self) -> bool:
        return len(self) > 0 and bool((self.labels != UNLABELED).all())

    def subset(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index], self.ids[index])

    def class_counts(self) -> np.ndarray:
        labeled = self.labels[self.labels != UNLABELED]
        return np.bincount(labeled, minlength=NUM_CLASSES)


@dataclass
class LoadReport:
    """What loading had to fix or skip, so commands can tell the user."""

    skipped: list[str] = field(default_factory=list)  # "path: reason" for unreadable images / rows
    resized: int = 0  # images not 48x48, converted
    converted_to_gray: int = 0  # colour images, converted
    dropped_held_out_copies: int = 0  # training images identical to a test (or given val) image, left out
    notes: list[str] = field(default_factory=list)


@dataclass
class FERData:
    """A data set ready for training: `val` is what every selection uses, `test` is only reported."""

    name: str  # human-readable origin, e.g. "folders:/abs/path" or "synthetic"
    form: str  # "kaggle_csv" | "torchvision" | "folders" | "synthetic"
    train: Split | None
    val: Split | None
    test: Split | None
    report: LoadReport = field(default_factory=LoadReport)
    # How load_data made `val` (seed, fraction, drop_test_copies), so a model file can record it; empty otherwise.
    val_split: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, Split]:
        return {k: v for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None}

    def split(self, name: str) -> Split:
        found = self.splits().get(name)
        if found is None:
            from fer_search.errors import UserError

            raise UserError(f"{self.name} has no '{name}' split (it has: {', '.join(self.splits()) or 'none'})")
        return found

    def version(self) -> str:
        """A short data-set version, e.g. "folders-3f9a2c1d": the form, and a hash of every split's image
        ids and labels, so another copy, another split or another seed gives another version."""
        import hashlib

        digest = hashlib.sha1()
        for name, split in self.splits().items():
            digest.update(name.encode())
            digest.update("\n".join(map(str, split.ids)).encode())
            digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        return f"{self.form}-{digest.hexdigest()[:8]}"

    def val_ids_hash(self) -> str:
        """SHA-256 of the validation images' ids, in order: which images make up the validation split."""
        import hashlib

        return hashlib.sha256("\n".join(map(str, self.val.ids)).encode()).hexdigest()

    def overfit_check(self, n: int, seed: int) -> "FERData":
        """n seeded training images as both train and val, test unchanged: the documented check that the
        pipeline can fit a small set perfectly. Kept in their original order, so it is idempotent."""
        if not 0 < n <= len(self.train):
            from fer_search.errors import UserError

            raise UserError(f"overfit check: {n} images asked for, {self.name} has {len(self.train)} training images")
        chosen = np.sort(np.random.default_rng(seed).permutation(len(self.train))[:n])
        subset = self.train.subset(chosen)
        return FERData(f"{self.name} (overfit check: {n} training images as train and val)", self.form, subset,
                       subset, self.test, self.report)
