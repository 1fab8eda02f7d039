"""Documented points run as they ran: ASHA lets them finish, and `reproduce` puts the runs' figures beside
this run's, measured alike, with the held-out test figures.

The tiny search (tests/conftest.py) shows a point's own epochs outlasting --max-epochs and ASHA's max_t
(tests/test_search.py); here ASHA's rung cutoff is checked directly, `reproduce` runs the real simple_cnn
series with its models shrunk and its epochs cut to 2, so it takes seconds, and the deeper_cnn and
attention_cnn series as they are with --smoke.
"""
from __future__ import annotations

import json
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
    from fer_search.search.ray_adaptations import PointBudgetASHA

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
    from ray.air.integrations.wandb import WandbLoggerCallback

    from fer_search.search.ray_adaptations import SeriesWandbCallback

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



def test_reproduce_compares_like_with_like_and_adds_the_held_out_test(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(search_spaces, "load_documented", _tiny_documented)
    storage = tmp_path / "runs"
    argv = ["reproduce", "simple_cnn", "--data", "synthetic", "--storage", str(storage), "--name", "series",
            "--max-train-images", "256", "--cpus", str(min(2, local_cpu_count()))]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| version | the run's figure: source, what it measures | quantity | the run | this run | epoch |" in printed
    assert "Not as the runs ran: capped at 256 training images per epoch" in printed

    trials = {t.point: t for t in layout.list_trials(storage, "series")}
    assert list(trials) == ["baseline", "v1", "v2", "v3"]
    assert all(t.config["epochs"] == 2 and t.status == layout.COMPLETED for t in trials.values())
    # The overfit check validated on its own 200 training images.
    assert len(np.load(trials["baseline"].probs_path)["val_labels"]) == 200

    table = pd.read_csv(storage / "series" / "reproduce.csv")
    assert (storage / "series" / "reproduce.md").read_text().count("**simple_cnn ") == 4
    assert json.loads((storage / "series" / "reproduce.json").read_text())["reproduce"][0]["version"] == "baseline"

    def rows(version: str, quantity: str) -> pd.DataFrame:
        return table[(table["version"] == version) & (table["quantity"] == quantity)]

    v1 = trials["v1"].epoch_table
    best_epoch = trials["v1"].summary()["best_epoch"]
    best = rows("v1", "val acc").iloc[0]  # run 70toflci's best epoch (12): 58.24%
    assert float(best["the_run"]) == 0.5824 and "best epoch (12)" in best["measures"]
    assert float(best["this_run"]) == pytest.approx(float(v1.loc[v1["epoch"] == best_epoch, "val_acc"].iloc[0]))
    assert int(best["this_epoch"]) == best_epoch
    assert float(best["difference"]) == pytest.approx(float(best["this_run"]) - 0.5824)
    last = rows("v1", "val acc").iloc[2]  # the README's last epoch (12): 57.66%, beside this run's last epoch
    assert float(last["the_run"]) == 0.5766 and "last epoch (12)" in last["measures"]
    assert float(last["this_run"]) == pytest.approx(float(v1["val_acc"].iloc[-1])) and int(last["this_epoch"]) == 2
    assert [int(r) for r in rows("v1", "epoch")["the_run"]] == [12, 17, 12]
    test = rows("v1", "held-out test acc").iloc[0]
    assert pd.isna(test["the_run"]) and float(test["this_run"]) == trials["v1"].summary()["metrics"]["test_acc"]
    assert not pd.isna(rows("v2", "held-out test macro-F1").iloc[0]["this_run"])
    disgust = rows("v3", "predicts disgust (val)").iloc[0]
    assert disgust["the_run"] == "only" and disgust["difference"] in ("same", "differs")
    assert disgust["this_run"] in ("never", "only") or " of 400" in disgust["this_run"]
    recall = rows("v3", "val recall per class, last epoch").iloc[0]["this_run"]
    assert [part for part in recall.split()[::2]] == ["an", "di", "fe", "ha", "sa", "su", "ne"]
    perfect = rows("baseline", "first epoch at 100% val").iloc[0]
    assert perfect["the_run"] == "13" and perfect["this_run"] in ("not reached", "1", "2")


def test_reproduce_smoke_runs_the_deeper_and_attention_series_on_cpu(tmp_path, capsys):
    storage = tmp_path / "runs"
    argv = ["reproduce", "deeper_cnn,attention_cnn", "--smoke", "--data", "synthetic", "--storage", str(storage),
            "--name", "smoke", "--gpus", "0", "--cpus", str(min(2, local_cpu_count())), "--cpus-per-trial", "0.5"]
    assert main(argv) == 0
    assert "Not as the runs ran: --smoke, 2 epochs per point" in capsys.readouterr().out
    trials = layout.list_trials(storage, "smoke")
    assert [(t.family, t.point) for t in trials] == [
        ("deeper_cnn", "v1"), ("attention_cnn", "v1"), ("deeper_cnn", "v2"), ("attention_cnn", "v2"),
        ("deeper_cnn", "v3"), ("attention_cnn", "v3"), ("attention_cnn", "v4")]
    assert all(t.status == layout.COMPLETED and t.epochs == 2 for t in trials)
    deeper_v1 = next(t for t in trials if (t.family, t.point) == ("deeper_cnn", "v1")).config
    assert (deeper_v1["grad_clip"], deeper_v1["convs_per_block"], deeper_v1["max_train_images"]) == (1.0, [2, 2, 2, 1], 512)


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "cnn"], "unknown family cnn; families: simple_cnn"),
    (["reproduce", "vgg"], "vgg is this project's addition, not a family the series ran"),
    (["reproduce", "simple_cnn", "--set", "colour=3"], "unknown option 'colour'"),
    (["reproduce", "simple_cnn", "--max-train-images", "-1"], "--max-train-images must be at least 0"),
    (["reproduce", "simple_cnn", "--storage", "s3://bucket/runs"], "--storage must be a local folder"),
])
def test_reproduce_user_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
