"""From finished trials to one ensemble: candidates, top-K selection, vote weights, temperature, files.

Selection, weights and temperature see validation probabilities only. Test probabilities are combined
once, after everything is fixed, for the report; nothing is chosen on them.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import AnalysisWarning
from analysis import combine
from fer_search.data.types import CLASS_NAMES, UNLABELED
from fer_search.errors import UserError
from fer_search.terminal import progress_bar
from fer_search.search import layout
from fer_search.search.storage import StoragePath
from fer_search.training import checkpoint

PROB_KEYS = ("val_probs", "val_labels", "val_ids", "test_probs", "test_labels", "test_ids")
FINISHED = (layout.COMPLETED, layout.STOPPED)


@dataclass
class Member:
    """A finished trial with its stored best-epoch probabilities (the arrays of best/probs.npz)."""

    trial: layout.Trial
    probs: dict[str, np.ndarray] = field(repr=False)
    entry: dict[str, Any] | None = field(default=None, repr=False)  # its model file, loaded once chosen

    @property
    def name(self) -> str:
        # Trial names repeat across experiments: "<experiment>/<number>_<family>_<point>".
        return f"{self.trial.experiment}/{self.trial.name}"

    def score(self, metric: str) -> float:
        return combine.score(self.probs["val_probs"], self.probs["val_labels"], metric)


@dataclass
class Ensemble:
    members: list[Member]  # best first by the validation metric
    weights: np.ndarray
    temperature: float
    method: str
    metric: str
    tta: str
    library: int = 0  # greedy: how many of the best trials the members were chosen from

    def stack(self, split: str) -> np.ndarray:
        return np.stack([m.probs[f"{split}_probs"] for m in self.members])

    def probs(self, split: str, temperature: float | None = None) -> np.ndarray:
        t = self.temperature if temperature is None else temperature
        return combine.combine(self.stack(split), self.weights, t)

    def labels(self, split: str) -> np.ndarray:
        return self.members[0].probs[f"{split}_labels"]

    def labeled_splits(self) -> list[str]:
        """val, and test where the data has a labeled test split (scored once, reported only)."""
        test = self.labels("test")
        return ["val"] + (["test"] if len(test) and (test != UNLABELED).all() else [])


def load_candidates(trials: list[layout.Trial], *, progress: bool = True) -> list[Member]:
    """Every finished trial whose stored probabilities load; the others are skipped with a warning."""
    members = []
    for trial in progress_bar(trials, desc="reading trials", unit="trial", enabled=progress, leave=False):
        if trial.status not in FINISHED:
            continue  # running or errored: listed by the leaderboard, never ensembled
        problem = None
        if trial.model_path is None or trial.probs_path is None:
            problem = "no stored best/model.pt and best/probs.npz"
        else:
            probs, problem = _read_probs(trial.probs_path)
        if problem:
            warnings.warn(f"trial {trial.name} ({trial.path}): {problem}; skipped", AnalysisWarning, stacklevel=2)
            continue
        members.append(Member(trial, probs))
    _require_same_data(members)
    return members


def _read_probs(path: StoragePath) -> tuple[dict[str, np.ndarray] | None, str | None]:
    try:
        with np.load(path.open_bytes()) as stored:  # through the storage's filesystem: a folder or a bucket
            probs = {key: stored[key] for key in PROB_KEYS if key in stored}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        return None, f"unreadable {path.name} ({type(exc).__name__}: {exc})"
    if "test_probs" not in probs:  # the data had no test split
        probs.update(test_probs=np.zeros((0, 0), np.float32), test_labels=np.zeros(0, np.int64),
                     test_ids=np.zeros(0, str))
    missing = [k for k in PROB_KEYS if k not in probs]
    if missing:
        return None, f"{path.name} lacks {', '.join(missing)}"
    for split in ("val", "test"):
        p, n = probs[f"{split}_probs"], len(probs[f"{split}_labels"])
        if n and (p.ndim != 2 or p.shape[0] != n):
            return None, f"{path.name}: {split}_probs has shape {p.shape} for {n} labels"
    if len(probs["val_labels"]) == 0:
        return None, f"{path.name} has no validation probabilities"
    return probs, None


def _require_same_data(members: list[Member]) -> None:
    """Trials can only be combined when scored on the same images with the same classes."""
    groups: dict[tuple, list[Member]] = {}
    for m in members:
        p = m.probs
        key = (p["val_probs"].shape[1], tuple(p["val_ids"].astype(str)), p["val_labels"].tobytes(),
               tuple(p["test_ids"].astype(str)))
        groups.setdefault(key, []).append(m)
    if len(groups) > 1:
        lines = [f"{n_classes} classes, {len(val_ids)} validation images: experiments "
                 + ", ".join(sorted({m.trial.experiment for m in group}))
                 for (n_classes, val_ids, *_), group in groups.items()]
        raise UserError("these trials were scored on different data or class sets and cannot be combined:\n  "
                        + "\n  ".join(lines) + "\nchoose experiments that share data with --name")
    if members and members[0].probs["val_probs"].shape[1] != len(CLASS_NAMES):
        raise UserError(f"trials have {members[0].probs['val_probs'].shape[1]} classes; expected the "
                        f"{len(CLASS_NAMES)} FER2013 classes")


def select(candidates: list[Member], top: int, metric: str, diverse: bool) -> list[Member]:
    """The `top` best candidates by the validation metric (one per family with `diverse`), best first.

    A chosen trial whose model file does not load is skipped with a warning and the next one taken.
    Fewer usable trials than `top` gives a warning and an ensemble of those there are.
    """
    ranked = sorted(candidates, key=lambda m: -m.score(metric))  # stable: ties keep trial order
    chosen: list[Member] = []
    for member in ranked:
        if len(chosen) == top:
            break
        if diverse and any(c.trial.family == member.trial.family for c in chosen):
            continue
        try:
            member.entry = checkpoint.load(member.trial.model_path)
        except UserError as exc:
            warnings.warn(f"trial {member.name}: {exc}; skipped", AnalysisWarning, stacklevel=2)
            continue
        chosen.append(member)
    if not chosen:
        raise UserError("none of the finished trials has a loadable model file")
    if len(chosen) < top:
        pool = "families" if diverse else "finished trials"
        warnings.warn(f"asked for the top {top}, but only {len(chosen)} {pool} are usable; "
                      f"ensembling those {len(chosen)}", AnalysisWarning, stacklevel=2)
    return chosen


def choose(candidates: list[Member], top: int, metric: str, method: str, *, diverse: bool = False,
           library: int = 20) -> tuple[list[Member], np.ndarray | None, int]:
    """-> (members, their weights or None to fit, library size). greedy: bagged Caruana selection of
    `top` members from the `library` best trials (more than `top`: the point of a library); mean and
    weighted: the `top` best trials."""
    if method != "greedy":
        return select(candidates, top, metric, diverse), None, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # a library smaller than asked is normal
        pool = select(candidates, max(library, top), metric, diverse)
    labels = pool[0].probs["val_labels"]
    weights = combine.bagged_caruana(np.stack([m.probs["val_probs"] for m in pool]), labels, top, metric)
    chosen = np.flatnonzero(weights)
    if len(chosen) < top:
        warnings.warn(f"greedy selection from the best {len(pool)} trials gave weight to {len(chosen)} of the "
                      f"{top} members asked for; the ensemble holds those {len(chosen)}", AnalysisWarning,
                      stacklevel=2)
    return [pool[i] for i in chosen], weights[chosen], len(pool)


def rescore_with_tta(members: list[Member], data, tta: str = "flip", *, device: str = "cpu",
                     progress: bool = True) -> None:
    """Replace the stored probabilities with fresh ones computed with test-time augmentation.

    Images are matched to the stored probabilities by id (and checked by label), so any validation
    carve of the search's data works, and other data is refused.
    """
    from fer_search.inference.predictor import load_predictor

    stored = members[0].probs
    val_images = _images_by_id(stored["val_ids"], stored["val_labels"], [data.val, data.train], "validation")
    test_images = (_images_by_id(stored["test_ids"], stored["test_labels"], [data.test], "test")
                   if len(stored["test_ids"]) else None)
    for member in progress_bar(members, desc=f"{tta} TTA", unit="model", enabled=progress, leave=False):
        predictor = load_predictor(member.entry, device=device, tta=tta)
        member.probs["val_probs"] = predictor.predict_proba(val_images)
        if test_images is not None:
            member.probs["test_probs"] = predictor.predict_proba(test_images)


def _images_by_id(ids: np.ndarray, labels: np.ndarray, splits, what: str) -> np.ndarray:
    lookup = {}
    for split in reversed([s for s in splits if s is not None]):  # earlier splits win where ids repeat
        lookup.update({str(i): (split, k) for k, i in enumerate(split.ids)})
    found = [lookup.get(str(i)) for i in ids]
    wrong = sum(f is None or f[0].labels[f[1]] != label for f, label in zip(found, labels))
    if wrong:
        raise UserError(f"--data does not hold the {what} images the trials were scored on ({wrong} of {len(ids)} "
                        "missing or labelled differently); pass the data the search ran on")
    return np.stack([split.images[k] for split, k in found])


def build(members: list[Member], method: str, metric: str, tta: str, weights: np.ndarray | None = None,
          library: int = 0) -> Ensemble:
    """Fit the vote weights (unless given) and then the temperature on validation."""
    val = np.stack([m.probs["val_probs"] for m in members])
    labels = members[0].probs["val_labels"]
    if weights is None:
        weights = combine.fit_weights(val, labels, method, metric)
    return Ensemble(members, weights, combine.fit_temperature(val, labels, weights), method, metric, tta, library)


def members_tta(members: list[Member]) -> str:
    """The test-time augmentation the stored probabilities were made with (one setting for all)."""
    settings = {m.entry.get("tta", "none") for m in members}
    if len(settings) > 1:
        raise UserError("the chosen trials were evaluated with different TTA settings "
                        f"({', '.join(sorted(settings))}); "
                        "pass --tta to rescore them all with flip TTA")
    return settings.pop()


def save(ensemble: Ensemble, path: Path) -> Path:
    """OUT/ensemble.pt: the members with a non-zero weight, their weights, temperature and TTA."""
    used = [(m, w) for m, w in zip(ensemble.members, ensemble.weights) if w > 0]
    entry = checkpoint.ensemble_entry(
        [m.entry for m, _ in used], [float(w) for _, w in used], ensemble.temperature, ensemble.tta,
        metadata={"method": ensemble.method, "metric": ensemble.metric,
                  "trials": [str(m.trial.path) for m, _ in used]},
    )
    return checkpoint.save(entry, path)


def kaggle_test(ensemble: Ensemble) -> bool:
    """Whether the test split is Kaggle's: the CSV forms (Kaggle's fer2013.csv, torchvision's folder)
    name test images by their 0-based row, the numbering a Kaggle submission uses; image folders and
    the synthetic set name them by path."""
    ids = ensemble.members[0].probs["test_ids"].astype(str)
    return len(ids) > 0 and np.array_equal(ids, np.arange(len(ids)).astype(str))


def write_submission(ensemble: Ensemble, path: Path) -> Path:
    """Kaggle format: id,emotion with FER2013 class ids."""
    ids = ensemble.members[0].probs["test_ids"].astype(int)
    pd.DataFrame({"id": ids, "emotion": ensemble.probs("test").argmax(1)}).to_csv(path, index=False)
    return path
