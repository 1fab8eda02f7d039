"""Documented points run as documented: ASHA lets them finish, and `reproduce` puts the notes beside the run.

The tiny search (tests/conftest.py) shows a point's own epochs outlasting --max-epochs and ASHA's max_t
(tests/test_search.py); here ASHA's rung cutoff is checked directly, and `reproduce` runs the real
simple_cnn series with its models shrunk and its epochs cut to 2, so it takes seconds.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import search_spaces
from fer_search.cli import main
from fer_search.search import layout
from fer_search.search.settings import local_cpu_count
from search_spaces import load_documented


def test_asha_lets_a_point_with_its_own_budget_finish():
    from fer_search.search.ray_tune import PointBudgetASHA

    asha = PointBudgetASHA({("simple_cnn", "v1")}, time_attr="training_iteration", metric="best_val_acc",
                           mode="max", max_t=2, grace_period=1, reduction_factor=2)
    strong, weak, documented = (SimpleNamespace(trial_id=name, config={"family": "simple_cnn", "point": point})
                                for name, point in (("strong", "tpe"), ("weak", "tpe"), ("documented", "v1")))
    for trial in (strong, weak, documented):
        asha.on_trial_add(None, trial)

    def result(epoch: int, value: float) -> dict:
        return {"training_iteration": epoch, "best_val_acc": value}

    assert asha.on_trial_result(None, strong, result(1, 0.9)) == asha.CONTINUE
    assert asha.on_trial_result(None, weak, result(1, 0.1)) == asha.STOP  # below the rung's cutoff
    assert asha.on_trial_result(None, documented, result(1, 0.1)) == asha.CONTINUE  # as weak, but documented
    assert asha.on_trial_result(None, documented, result(2, 0.1)) == asha.CONTINUE  # max_t reached
    assert asha.on_trial_result(None, strong, result(2, 0.9)) == asha.STOP  # max_t stops the others
    # The documented point's result still counts in the rung the others are measured against.
    assert "documented" in dict(asha._brackets[0]._rungs)[1]


def test_wandb_tags_model_type_data_version_and_experiment_type(monkeypatch):
    from fer_search.search.ray_tune import SeriesWandbCallback, WandbLoggerCallback

    started = {}
    monkeypatch.setattr(WandbLoggerCallback, "_start_logging_actor",
                        lambda self, trial, exclude, **kwargs: started.update(kwargs))
    callback = SeriesWandbCallback(data_version="folders-3f9a2c1d", experiment_type="reproduce",
                                   project="facial-expression-recognition")
    callback._start_logging_actor(SimpleNamespace(config={"family": "resnet", "arch": "resnet18"}), [], project="p")
    assert started["tags"] == ["resnet", "resnet18", "folders-3f9a2c1d", "reproduce"]


def _tiny_documented(family: str):
    """The real documented series of `family`, its models shrunk and its epochs cut to 2 (reported figures kept)."""
    space = load_documented(family)
    for point in space.points.values():
        point.update(widths=[8, 16], kernel_size=3, fc_width=32, epochs=2)
    return space



def test_reproduce_writes_the_notes_beside_the_measured_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(search_spaces, "load_documented", _tiny_documented)
    storage = tmp_path / "runs"
    argv = ["reproduce", "simple_cnn", "--data", "synthetic", "--storage", str(storage), "--name", "series",
            "--max-train-images", "256", "--cpus", str(min(2, local_cpu_count()))]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| version | configuration | quantity | notes | this run | difference |" in printed
    assert "Not as documented: capped at 256 training images per epoch" in printed

    trials = {t.point: t for t in layout.list_trials(storage, "series")}
    assert list(trials) == ["baseline", "v1", "v2", "v3"]
    assert all(t.config["epochs"] == 2 and t.status == layout.COMPLETED for t in trials.values())
    # The overfit check validated on its own 200 training images.
    assert len(np.load(trials["baseline"].probs_path)["val_labels"]) == 200

    table = pd.read_csv(storage / "series" / "reproduce.csv")
    assert (storage / "series" / "reproduce.md").read_text().count("**simple_cnn ") == 4

    def row(version: str, quantity: str) -> pd.Series:
        return table[(table["version"] == version) & (table["quantity"] == quantity)].iloc[0]

    val = row("v1", "val acc")
    assert float(val["notes"]) == 0.5766 and 0 <= float(val["this_run"]) <= 1
    assert float(val["difference"]) == pytest.approx(float(val["this_run"]) - 0.5766)
    assert row("v1", "stopped at epoch")["notes"] == "12" and row("v1", "stopped at epoch")["this_run"] == "2"
    disgust = row("v3", "predicts disgust (val)")
    assert disgust["notes"] == "only" and disgust["difference"] in ("same", "differs")
    assert disgust["this_run"] in ("never", "only") or " of 400" in disgust["this_run"]
    recall = row("v3", "val recall per class, last epoch")["this_run"]
    assert [part for part in recall.split()[::2]] == ["an", "di", "fe", "ha", "sa", "su", "ne"]
    perfect = row("baseline", "100% val by epoch")
    assert perfect["notes"] == "13" and (perfect["this_run"] == "not reached" or perfect["this_run"] in ("1", "2"))
    assert pd.isna(row("baseline", "train acc*")["notes"]) and not pd.isna(row("baseline", "train acc*")["this_run"])


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "cnn"], "unknown family cnn; families: simple_cnn"),
    (["reproduce", "simple_cnn", "--max-train-images", "-1"], "--max-train-images must be at least 0"),
    (["reproduce", "simple_cnn", "--storage", "s3://bucket/runs"], "--storage must be a local folder"),
])
def test_reproduce_user_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
