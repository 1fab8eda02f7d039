"""Refit: retrain an ensemble's members on train + validation for the epochs validation chose, the
last step of a search (AutoGluon's refit_full). Nothing is chosen here: the members, their epoch
counts, the vote weights and the temperature all come from the validated ensemble, and the test
split is kept out of training entirely (scored once afterwards, for the report).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from analysis.ensemble import Ensemble
from fer_search.data.types import FERData, Split
from fer_search.errors import UserError
from fer_search.terminal import progress_bar
from fer_search.inference.predictor import load_predictor
from fer_search.training import TrainConfig, checkpoint, train


def train_plus_validation(data: FERData, val_ids: np.ndarray) -> FERData:
    """The search's data with validation folded into train and no test split. Refused when `data`'s
    validation split is not the one the members were selected on."""
    if data.val is None or sorted(map(str, data.val.ids)) != sorted(map(str, val_ids)):
        raise UserError("--data does not carve the validation split the search used (other images); pass the "
                        "search's --data, and --keep-test-copies if the search ran with it")
    train, val = data.train, data.val
    merged = Split(np.concatenate([train.images, val.images]), np.concatenate([train.labels, val.labels]),
                   np.concatenate([train.ids, val.ids]))
    return dataclasses.replace(data, train=merged, test=None)


def refit_config(entry: dict) -> TrainConfig:
    """The member's own configuration, for exactly the epoch count validation chose, without early stopping."""
    values = {**entry["config"], "epochs": int(entry["epoch"]), "patience": 0}
    return TrainConfig.from_flat(values)


def refit(ensemble: Ensemble, data: FERData, out: Path, *, device: str = "cpu", progress: bool = True) -> Path:
    """Retrain every member on train + validation; write OUT/ensemble.pt with the validated ensemble's
    weights and temperature. Returns its path."""
    merged = train_plus_validation(data, ensemble.members[0].probs["val_ids"])
    voting = [(m, float(w)) for m, w in zip(ensemble.members, ensemble.weights) if w > 0]
    entries = []
    for member, _ in progress_bar(voting, desc="refit", unit="model", enabled=progress):
        # keep="last": validation is inside the training data now and must not pick an epoch.
        result = train(refit_config(member.entry), merged, device=device, keep="last", progress=False)
        entry = result.best.entry
        entry["metrics"] = {}  # its validation figures are in-sample: not worth keeping
        entry["refit"] = {"from_trial": str(member.trial.path), "train_images": len(merged.train)}
        entries.append(entry)
    ensemble_file = checkpoint.ensemble_entry(entries, [w for _, w in voting], ensemble.temperature,
                                              ensemble.tta, metadata={"method": ensemble.method, "refit": True})
    return checkpoint.save(ensemble_file, out / "ensemble.pt")


def score_on_test(path: Path, data: FERData, device: str = "cpu") -> np.ndarray:
    """The refit ensemble's probabilities on the test split, computed once for the report."""
    return load_predictor(path, device=device).predict_proba(data.test.images)
