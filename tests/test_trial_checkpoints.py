"""A trial's checkpoints (trial.py, trial_files.py) without Ray: when they are written, what they hold, that the
best epoch's files are written once and stay findable, and that a trial resumes from any kept checkpoint."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_search.data import make_synthetic
from fer_search.search import layout
from fer_search.search.storage import StoragePath
from fer_search.search.trial import CheckpointPolicy, run_trial
from fer_search.search.trial_files import load_checkpoint

# lr 1e-9: the weights hardly move, so epoch 1 stays the best epoch and the later ones are "no new best".
FLAT = {"arch": "simple_cnn", "widths": (8, 16), "kernel_size": 3, "fc_width": 32, "batch_norm": False,
        "batch_size": 32, "lr": 1e-9, "schedule": "none", "max_train_images": 128, "epochs": 5,
        "family": "simple_cnn", "point": "flat", "trial_number": 0}


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_train=400, n_test=100, seed=3)


class Reports:
    """report() as Ray's trainable gets it: every result, and a copy of each checkpoint directory (Ray copies it
    to storage before report returns; the trial then deletes its own)."""

    def __init__(self, root: Path):
        self.root = root
        self.results: list[dict] = []
        self.checkpoints: dict[int, Path] = {}

    def __call__(self, metrics: dict, directory: str | None) -> None:
        self.results.append(metrics)
        if directory is not None:
            kept = self.root / f"checkpoint_{int(metrics['epoch']):06d}"
            shutil.copytree(directory, kept)
            self.checkpoints[int(metrics["epoch"])] = kept


def _trial(tmp_path: Path, data, config: dict, **options) -> tuple[Reports, Path]:
    trial_dir = tmp_path / "trial"
    reports = Reports(trial_dir)
    run_trial(config, data, report=reports, log_dir=str(tmp_path / "board"), trial_dir=StoragePath.of(trial_dir),
              device="cpu", **options)
    return reports, trial_dir


def test_the_policy_checkpoints_new_bests_the_last_epoch_and_every_n_epochs(monkeypatch):
    every_three = CheckpointPolicy(3)
    due = [epoch for epoch, best in enumerate([True, False, False, True, False, False, False, False], 1)
           if every_three.due(epoch, best, last=epoch == 8)]
    assert due == [1, 4, 7, 8]
    clock = iter([0.0, 10.0, 50.0, 70.0, 100.0, 140.0])  # created at 0 s; epochs end at 10, 50, 70, 100, 140 s
    monkeypatch.setattr("fer_search.search.trial.time.monotonic", lambda: next(clock))
    once_a_minute = CheckpointPolicy(None)
    assert [once_a_minute.due(e, False, last=False) for e in range(1, 6)] == [False, False, True, False, True]


def test_epochs_without_a_new_best_write_no_best_files_and_checkpoint_only_when_due(tmp_path, data):
    reports, trial_dir = _trial(tmp_path, data, FLAT)
    assert [r["epoch"] for r in reports.results] == [1, 2, 3, 4, 5]
    assert sorted(reports.checkpoints) == [1, 5]  # the new best and the last epoch (epochs take well under a minute)
    for epoch, directory in reports.checkpoints.items():
        assert sorted(p.name for p in directory.iterdir()) == ["state.pt", "summary.json"], epoch
        summary = json.loads((directory / "summary.json").read_text())
        assert summary["best_epoch"] == 1 and summary["best_dir"] == "best_epoch_0001"
    assert json.loads((reports.checkpoints[5] / "summary.json").read_text())["finished_by"] == "max_epochs"
    # The best epoch's files: once, in their own folder, never rewritten.
    assert sorted(p.name for p in trial_dir.glob("best_epoch_*")) == ["best_epoch_0001"]
    assert sorted(p.name for p in (trial_dir / "best_epoch_0001").iterdir()) == ["model.pt", "probs.npz"]

    trial = layout.Trial("exp", StoragePath.of(trial_dir), FLAT, reports.results[-1])
    assert trial.best_dir.name == "best_epoch_0001" and trial.summary()["epochs_trained"] == 5
    assert torch.load(trial.model_path, weights_only=True)["epoch"] == 1


def test_every_epoch_reports_the_same_keys(tmp_path, data):
    """test_* are scored on best epochs only; the others carry them as NaN, so a CSV that takes its columns from
    one row stays aligned."""
    reports, _ = _trial(tmp_path, data, FLAT)
    keys = [set(r) - {"finished_by"} for r in reports.results]
    assert all(k == keys[0] for k in keys) and "test_acc" in keys[0]
    assert np.isfinite(reports.results[0]["test_acc"]) and np.isnan(reports.results[1]["test_acc"])


def test_checkpoint_every_n_epochs(tmp_path, data):
    reports, _ = _trial(tmp_path, data, {**FLAT, "epochs": 7}, checkpoint_every=2)
    assert sorted(reports.checkpoints) == [1, 3, 5, 7]


def test_a_new_best_writes_its_folder_and_older_ones_go_once_no_kept_checkpoint_names_them(tmp_path):
    improving = {**FLAT, "lr": 0.003, "batch_norm": True, "max_train_images": 512, "epochs": 6}
    reports, trial_dir = _trial(tmp_path, make_synthetic(n_train=1000, n_test=100, seed=3), improving,
                                checkpoint_every=1)
    named = [json.loads((reports.checkpoints[e] / "summary.json").read_text())["best_dir"] for e in range(1, 7)]
    # Ray keeps the newest two checkpoints: the folders they name are there, and no other.
    assert sorted(p.name for p in trial_dir.glob("best_epoch_*")) == sorted(set(named[-2:]))
    assert len(set(named)) > 1  # the test saw the best change


def test_a_trial_resumes_from_a_kept_checkpoint_as_if_never_stopped(tmp_path, data):
    config = {**FLAT, "lr": 0.003, "batch_norm": True, "epochs": 4}
    straight, _ = _trial(tmp_path / "straight", data, config, checkpoint_every=1)
    first, trial_dir = _trial(tmp_path / "first", data, {**config, "epochs": 4}, checkpoint_every=1)
    resume = load_checkpoint(first.checkpoints[2], StoragePath.of(trial_dir))
    assert resume["epoch"] == 2 and resume["best"]["dir"].startswith("best_epoch_")
    resumed = Reports(tmp_path / "resumed")
    run_trial(config, data, report=resumed, log_dir=str(tmp_path / "board2"), trial_dir=StoragePath.of(trial_dir),
              resume=resume, device="cpu", checkpoint_every=1)
    assert [r["epoch"] for r in resumed.results] == [3, 4]
    for key in ("val_loss", "best_val_acc", "best_epoch"):
        assert resumed.results[-1][key] == pytest.approx(straight.results[-1][key], rel=1e-5), key


def test_a_checkpoint_of_the_older_layout_still_resumes(tmp_path, data):
    """Before: best/ (model.pt, probs.npz, summary.json) inside every checkpoint. A trial resumed from one writes
    the best epoch's folder at its next checkpoint, even without a new best."""
    reports, trial_dir = _trial(tmp_path, data, {**FLAT, "epochs": 2}, checkpoint_every=1)
    old = tmp_path / "old_checkpoint"
    shutil.copytree(reports.checkpoints[2], old)
    shutil.move(str(trial_dir / "best_epoch_0001"), old / "best")
    shutil.move(str(old / "summary.json"), old / "best" / "summary.json")
    resume = load_checkpoint(old, StoragePath.of(trial_dir))
    assert resume["best"]["dir"] is None and resume["best"]["epoch"] == 1
    resumed = Reports(tmp_path / "resumed")
    run_trial({**FLAT, "epochs": 3}, data, report=resumed, log_dir=str(tmp_path / "board2"),
              trial_dir=StoragePath.of(trial_dir), resume=resume, device="cpu", checkpoint_every=1)
    assert json.loads((resumed.checkpoints[3] / "summary.json").read_text())["best_dir"] == "best_epoch_0001"
    assert (trial_dir / "best_epoch_0001" / "model.pt").is_file()
    # The layout reads the older layout too.
    shutil.rmtree(trial_dir)
    (tmp_path / "legacy" / "checkpoint_000002").parent.mkdir()
    shutil.copytree(old, tmp_path / "legacy" / "checkpoint_000002")
    legacy = layout.Trial("exp", StoragePath.of(tmp_path / "legacy"), FLAT, {})
    assert legacy.model_path.name == "model.pt" and legacy.summary()["best_epoch"] == 1
