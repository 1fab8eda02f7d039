"""What the series' runs printed, each figure labelled by what it measures (REPORTED in the family modules).

Source: the committed outputs of the series' notebooks (ekvirika/Facial-Expression-Recognition), as the
fact sheet notebook-runs.md sets them down. A documented point's REPORTED is a list of `Figures`: figures
of one run measured alike, at the same epoch of the same split. `reproduce` compares each with this
project's figure measured alike: "best" with its best epoch by validation accuracy, "last" with its last
epoch trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The splits the series measured on: random stratified carves of Kaggle's train.csv (seed 42), whose exact
# duplicates fall on both sides. None had a test split but the vit's.
SPLIT_A = "the val part of a random 80/20 split of Training (5,742 images)"
SPLIT_B = "the val part of a random 85/15 split of Training (4,307 images)"
SPLIT_C = "the val part of a random 80/10/10 split of Training (2,871 images)"
OVERFIT = "the 200 training images themselves"

# Quantities a Figures may hold: accuracies, macro-F1 and disgust's recall as fractions; `disgust`: "never" or
# "only" (predicted on val); `perfect_val_epoch`: the first epoch with 100% val accuracy (the overfit check).
QUANTITIES = ("train_acc", "val_acc", "val_macro_f1", "disgust_recall", "disgust", "perfect_val_epoch")
AT = ("best", "last", "unknown")  # the epoch with the best val accuracy, the last trained, or not known


@dataclass(frozen=True)
class Figures:
    source: str  # the run that printed them ("run 70toflci, nb dcaa31f"), or "README only"
    at: str  # one of AT
    epoch: int | None  # that epoch, where known (for "last": the epoch the run stopped at)
    split: str  # what they were measured on
    chose: bool | None  # whether that split also chose the checkpoint or stopped training (None: unknown)
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.values) - set(QUANTITIES))
        if self.at not in AT or unknown:
            raise ValueError(f"Figures of {self.source}: at must be one of {AT}, got {self.at!r}; unknown "
                             f"quantities {unknown} (known: {', '.join(QUANTITIES)})")

    def measures(self) -> str:
        """What the figures measure, in words: "best epoch (12) on <split>, which also chose the checkpoint"."""
        epoch = {"best": "best epoch", "last": "last epoch", "unknown": "epoch (best or last: unknown)"}[self.at]
        epoch += f" ({self.epoch})" if self.epoch is not None else ""
        chose = {True: ", which also chose the checkpoint or stopped the run", False: ", which chose nothing",
                 None: ""}[self.chose]
        return f"{epoch} on {self.split}{chose}"


def best(source: str, epoch: int | None, split: str = SPLIT_A, chose: bool | None = True, **values: Any) -> Figures:
    return Figures(source, "best", epoch, split, chose, values)


def last(source: str, epoch: int | None, split: str = SPLIT_A, chose: bool | None = True, **values: Any) -> Figures:
    return Figures(source, "last", epoch, split, chose, values)


def unknown_epoch(source: str, epoch: int | None = None, split: str = SPLIT_A, chose: bool | None = True,
                  **values: Any) -> Figures:
    return Figures(source, "unknown", epoch, split, chose, values)
