"""The training core: config, augmentation, imbalance options, the trainer, checkpoints, evaluate/predict."""
from __future__ import annotations

import json
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fer_search.cli import main
from fer_search.data import make_synthetic
from fer_search.data.types import CLASS_NAMES
from fer_search.errors import UserError
from fer_search.inference.predictor import load_predictor
from fer_search.training import TrainConfig, parse_set_options, train
from fer_search.training.augment import augment_batch, tta_views
from fer_search.training.checkpoint import load
from fer_search.training.imbalance import class_weights, oversampled_epoch
from fer_search.training.trainer import _make_scheduler

TINY_CNN = {"arch": "simple_cnn", "widths": (8, 16), "kernel_size": 3, "fc_width": 32}


@pytest.fixture(scope="module")
def small_data():
    return make_synthetic(n_train=600, n_test=200, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data):
    out = tmp_path_factory.mktemp("train")
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 2, "batch_size": 32, "augment": 0.5})
    return out, train(config, small_data, out_dir=out, progress=False)


def test_from_flat_sorts_trainer_and_model_keys():
    config = TrainConfig.from_flat({"arch": "simple_cnn", "lr": "5e-4", "epochs": "3", "dropout": 0.2})
    assert config.lr == 5e-4 and config.epochs == 3 and config.model == {"dropout": 0.2}
    assert config.to_flat()["dropout"] == 0.2


def test_from_flat_rejects_unknown_option_by_name():
    with pytest.raises(UserError, match="unknown option 'lrr'"):
        TrainConfig.from_flat({"arch": "simple_cnn", "lrr": 1e-3})
    with pytest.raises(UserError, match="'epochs' expects int"):
        TrainConfig.from_flat({"arch": "simple_cnn", "epochs": "ten"})
    with pytest.raises(UserError, match="'imbalance' must be one of"):
        TrainConfig(imbalance="smote")


def test_imbalance_both_is_warned_where_a_user_asks_for_it_not_in_every_config(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a config (as every search trial builds) says nothing
        TrainConfig(imbalance="both")
    assert main(["train", "simple_cnn", "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "run"),
                 "--set", "imbalance=both", "--set", "widths=(8,16)", "--set", "max_train_images=256"]) == 0
    assert capsys.readouterr().err.count("collapsed to predicting only 'disgust'") == 1


def test_parse_set_options():
    assert parse_set_options(["lr=1e-3", "widths=(32,64)", "batch_norm=false", "optimizer=sgd"]) == {
        "lr": 1e-3, "widths": (32, 64), "batch_norm": False, "optimizer": "sgd"}
    with pytest.raises(UserError, match="key=value"):
        parse_set_options(["lr"])


def test_set_none_is_the_documented_choice_or_unsets_an_optional_option():
    values = parse_set_options(["schedule=none", "imbalance=none", "tta=none", "hflip=none", "pretrained=None"])
    config = TrainConfig.from_flat({"arch": "simple_cnn", **values})
    assert (config.schedule, config.imbalance, config.tta) == ("none", "none", "none")
    assert config.hflip is None and config.pretrained is None


def test_augmentation_strength_scales_documented_list_and_overrides_win():
    config = TrainConfig(augment=0.5, rotate=30.0)
    aug = config.augmentation()
    assert aug["rotate"] == 30.0 and aug["translate"] == pytest.approx(0.05) and aug["hflip"] == 0.25


def test_augment_batch_identity_and_shapes():
    x = torch.rand(16, 1, 48, 48) * 255
    assert torch.equal(augment_batch(x, TrainConfig().augmentation()), x)
    params = TrainConfig(augment=1.0, pad_crop=4).augmentation()
    out = augment_batch(x, params, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)
    again = augment_batch(x, params, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded generator -> reproducible


def test_hflip_only_mirrors_the_image():
    x = torch.arange(48.0).repeat(2, 1, 48, 1)
    out = augment_batch(x, {"hflip": 1.0})
    assert torch.allclose(out, x.flip(-1), atol=1e-3)


def test_tta_views_counts():
    x = torch.rand(2, 1, 48, 48)
    assert [len(tta_views(x, m)) for m in ("none", "flip", "crops")] == [1, 2, 10]


def test_class_weights_are_inverse_frequency_with_unit_sample_mean():
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 2).numpy()
    assert w[1] / w[0] == pytest.approx(9.0)
    assert (w[labels]).mean() == pytest.approx(1.0)


def test_oversampling_balances_classes():
    labels = torch.tensor([0] * 900 + [1] * 100 + [2] * 20)
    drawn = oversampled_epoch(labels, 3, 30000, torch.Generator().manual_seed(0))
    share = torch.bincount(labels[drawn], minlength=3).float() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.02)


def test_train_reports_every_epoch_metric(trained):
    _, result = trained
    row = result.history[-1]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "epoch_seconds", "images_per_s"):
        assert np.isfinite(row[key])
    assert {f"val_recall_{c}" for c in CLASS_NAMES} <= set(row)
    assert len(result.history) == 2 and result.finished_by == "max_epochs"


def test_checkpoint_is_self_describing_and_reproduces_val_probs(trained, small_data):
    out, result = trained
    entry = load(out / "model.pt")
    assert entry["arch"] == "simple_cnn" and entry["class_names"] == list(CLASS_NAMES)
    assert entry["epoch"] == result.best.epoch and entry["metrics"]["val_acc"] == result.best.metrics["val_acc"]
    probs = load_predictor(out / "model.pt").predict_proba(small_data.val.images)
    np.testing.assert_allclose(probs, result.best.val_probs, atol=1e-5)
    assert (out / "metrics.csv").read_text().startswith("epoch,")


def test_training_is_reproducible_on_cpu(small_data):
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 1, "batch_size": 32, "augment": 1.0, "mixup": 0.2,
                                    "imbalance": "oversample", "max_train_images": 128})
    first = train(config, small_data, device="cpu", progress=False)
    second = train(config, small_data, device="cpu", progress=False)
    np.testing.assert_array_equal(first.best.val_probs, second.best.val_probs)


def test_resume_continues_where_it_stopped(small_data):
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 3, "batch_size": 32, "max_train_images": 128})
    straight = train(config, small_data, device="cpu", progress=False)
    saved = {}

    def stop_after_first(metrics, state):
        saved["state"] = state.resume_state()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, small_data, device="cpu", progress=False, on_epoch=stop_after_first)
    resumed = train(config, small_data, device="cpu", progress=False, resume=saved["state"])
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    np.testing.assert_allclose(resumed.history[-1]["val_loss"], straight.history[-1]["val_loss"], rtol=1e-5)


def test_early_stopping_patience(small_data):
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 20, "lr": 1e-9, "patience": 2, "max_train_images": 64})
    endings = []
    result = train(config, small_data, device="cpu", progress=False, on_epoch=lambda m, s: endings.append(s.finished_by))
    assert result.finished_by == "early_stopping" and len(result.history) < 20
    assert endings[-1] == "early_stopping" and set(endings[:-1]) == {None}


def test_a_loss_that_explodes_without_becoming_nan_is_a_divergence(small_data):
    """SGD at lr 1e5: a finite training loss of ~1e19 in epoch 1, then ~1e5 at chance for ever. That is no result."""
    from fer_search.training import TrainingDiverged

    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 1e5,
                                    "schedule": "none"})
    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch 1 \(train loss .*e\+\d+, over 100x the "
                                               r"loss of a uniform prediction\)") as raised:
        train(config, small_data, device="cpu", progress=False)
    assert np.isfinite(raised.value.loss) and raised.value.epoch == 1


def _lr_curve(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The learning rate of every step of `config`'s schedule."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
    curve = []
    for _ in range(config.epochs * steps_per_epoch):
        curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return curve


def test_cosine_t_max_follows_torchs_cosine_annealing():
    # attention_cnn v3: T_max 10 of 50 epochs; here T_max 2 of 6 epochs of 5 steps: down, up, down.
    config = TrainConfig(schedule="cosine", epochs=6, cosine_t_max=2, lr=0.1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torchs = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2 * 5)
    expected = []
    for _ in range(30):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        torchs.step()
    curve = _lr_curve(config, steps_per_epoch=5)
    np.testing.assert_allclose(curve, expected, atol=1e-9)
    assert curve[10] == pytest.approx(0.0) and curve[20] == pytest.approx(0.1) and curve[29] < 0.01
    whole_run = _lr_curve(TrainConfig(schedule="cosine", epochs=6, lr=0.1), steps_per_epoch=5)
    assert whole_run[15] == pytest.approx(0.05) and min(whole_run) == whole_run[-1]  # one half-wave


def test_warmup_fraction_is_a_share_of_all_steps():
    # vit: warm-up over 10% of the steps, then cosine.
    curve = _lr_curve(TrainConfig(schedule="cosine", epochs=10, warmup_fraction=0.1, lr=1.0), steps_per_epoch=10)
    np.testing.assert_allclose(curve[:10], np.arange(1, 11) / 10)
    assert curve[10] == pytest.approx(1.0) and curve[55] == pytest.approx(0.5) and curve[-1] < 0.001
    with pytest.raises(UserError, match="'warmup_fraction' must be in \\[0, 1\\) and not set with warmup_epochs"):
        TrainConfig(schedule="cosine", warmup_fraction=0.1, warmup_epochs=1.0)
    with pytest.raises(UserError, match="'cosine_t_max' must be 0 or more"):
        TrainConfig(cosine_t_max=-1)


def test_overfit_check_trains_and_validates_on_the_same_images(small_data):
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 1, "batch_size": 50, "overfit_images": 100})
    result = train(config, small_data, device="cpu", progress=False)
    subset = small_data.overfit_check(100, seed=0)
    assert result.best.val_probs.shape == (100, 7)
    np.testing.assert_array_equal(subset.train.images, subset.val.images)
    assert set(subset.val.ids) <= set(small_data.train.ids) and subset.overfit_check(100, seed=0).val.ids.tolist() \
        == subset.val.ids.tolist()  # idempotent: the trial and the trainer pick the same images
    with pytest.raises(UserError, match="overfit check: 10000 images asked for"):
        small_data.overfit_check(10_000, seed=0)


def test_vit_uses_its_documented_normalisation_end_to_end(small_data, tmp_path, capsys):
    """Trained, stored, evaluated, predicted and exported with mean 0.5, std 0.5, not the data's statistics."""
    from analysis.export import run_exported
    from fer_search.search.trial import run_trial

    pixels = small_data.train.images
    assert abs(pixels.mean() / 255 - 0.5) > 0.02 or abs(pixels.std() / 255 - 0.5) > 0.02  # the test can tell
    from fer_search.search.storage import StoragePath

    config = {"arch": "vit", "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2, "epochs": 1,
              "batch_size": 64, "family": "vit", "point": "tpe", "trial_number": 0}
    run_trial(config, small_data, report=lambda metrics, directory: None, log_dir=str(tmp_path / "board"),
              trial_dir=StoragePath.of(tmp_path / "trial"), device="cpu")
    model_file = tmp_path / "trial" / "best_epoch_0001" / "model.pt"
    assert load(model_file)["normalization"] == {"mean": 0.5, "std": 0.5}
    predictor = load_predictor(model_file)
    assert (predictor.members[0].mean.item(), predictor.members[0].std.item()) == (127.5, 127.5)
    stored = np.load(tmp_path / "trial" / "best_epoch_0001" / "probs.npz")
    np.testing.assert_allclose(predictor.predict_proba(small_data.val.images), stored["val_probs"], atol=1e-4)

    # On test: the model was trained on small_data, whose validation split `--data synthetic` does not carve.
    assert main(["evaluate", str(model_file), "--data", "synthetic", "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    val = make_synthetic().test
    assert report["accuracy"] == pytest.approx((predictor.predict_proba(val.images).argmax(1) == val.labels).mean())

    Image.fromarray(val.images[0]).save(tmp_path / "face.png")
    assert main(["predict", str(model_file), str(tmp_path / "face.png"), "--csv", str(tmp_path / "p.csv")]) == 0
    import pandas as pd

    predicted = pd.read_csv(tmp_path / "p.csv")[list(CLASS_NAMES)].to_numpy()
    np.testing.assert_allclose(predicted[0], predictor.predict_proba(val.images[:1])[0], atol=1e-5)

    exported = tmp_path / "vit.onnx"
    assert main(["export", str(model_file), "--format", "onnx", "--out", str(exported)]) == 0
    batch = val.images[:5, None].astype(np.float32)
    np.testing.assert_allclose(run_exported(exported, "onnx", batch), predictor.predict_proba(val.images[:5]), atol=1e-4)


def test_missing_cuda_is_a_clear_error(small_data):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UserError, match="no CUDA device"):
        train(TrainConfig.from_flat(TINY_CNN), small_data, device="cuda", progress=False)


def test_cli_train_evaluate_predict_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "simple_cnn", "--data", "synthetic", "--epochs", "1", "--out", str(out),
            "--set", "widths=(8,16)", "--set", "kernel_size=3", "--set", "max_train_images=256"]
    assert main(args) == 0
    trained_text = capsys.readouterr().out
    assert "best epoch 1" in trained_text and (out / "model.pt").is_file()

    assert main(["evaluate", str(out / "model.pt"), "--data", "synthetic", "--split", "val", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    saved = load(out / "model.pt")["metrics"]
    assert report["accuracy"] == pytest.approx(saved["val_acc"])
    assert len(report["confusion_matrix"]) == 7 and set(report["per_class"]) == set(CLASS_NAMES)

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)).save(pictures / "colour.png")
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(pictures / "gray.jpg")
    (pictures / "broken.jpg").write_bytes(b"not an image")
    csv_path = tmp_path / "predictions.csv"
    assert main(["predict", str(out / "model.pt"), str(pictures), "--faces", "off", "--csv", str(csv_path)]) == 0
    import pandas as pd

    table = pd.read_csv(csv_path)
    assert len(table) == 3
    readable = table[table["confidence"].notna()]
    assert len(readable) == 2 and readable["emotion"].isin(CLASS_NAMES).all()
    np.testing.assert_allclose(readable[list(CLASS_NAMES)].sum(axis=1), 1.0, atol=1e-5)
    assert table["emotion"].str.startswith("unreadable").sum() == 1


def test_evaluate_val_scores_on_the_validation_split_the_model_was_chosen_on(tmp_path, capsys):
    """Trained with --seed 3, the model's validation split is seed 3's carve; seed 0's holds its training images."""
    out = tmp_path / "run"
    assert main(["train", "simple_cnn", "--data", "synthetic", "--epochs", "1", "--seed", "3", "--out", str(out),
                 "--set", "widths=(8,16)", "--set", "kernel_size=3", "--set", "max_train_images=256"]) == 0
    capsys.readouterr()
    model = out / "model.pt"
    assert load(model)["val_split"] == {"seed": 3, "fraction": 0.1, "drop_test_copies": True,
                                        "ids_hash": load_data_hash("synthetic", seed=3)}
    assert main(["evaluate", str(model), "--data", "synthetic", "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(load(model)["metrics"]["val_acc"])

    entry = load(model)
    for change, message in (({"val_split": {}}, "does not record the validation split it was chosen on"),
                            ({"val_split": {**entry["val_split"], "ids_hash": "0" * 64}},
                             "is not the one .* was chosen on"),
                            ({"refit": {"from_trial": "x"}}, "was refit on train \\+ validation")):
        changed = tmp_path / "changed.pt"
        torch.save({**entry, **change}, changed)
        assert main(["evaluate", str(changed), "--data", "synthetic", "--split", "val"]) == 2
        assert re.search(message, capsys.readouterr().err), message
    assert main(["evaluate", str(changed), "--data", "synthetic", "--split", "test", "--json"]) == 0  # test is fine


def load_data_hash(source: str, seed: int) -> str:
    from fer_search.data import load_data

    return load_data(source, seed=seed, progress=False).val_ids_hash()


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "nowhere/model.pt", "--data", "synthetic"], "no such model file"),
    (["train", "simple_cnn", "--data", "synthetic", "--out", "x", "--set", "nonsense=1"], "unknown option 'nonsense'"),
    (["train", "no_such_model", "--data", "synthetic", "--out", "x"], "unknown model"),
    (["train", "simple_cnn", "--data", "/no/such/path", "--out", "x"], "/no/such/path"),
])
def test_cli_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_cli_evaluate_rejects_a_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    assert main(["evaluate", str(bad), "--data", "synthetic"]) == 2
    assert "not a fer_search model or ensemble file" in capsys.readouterr().err


def test_a_foreign_pickle_gets_one_short_line_without_torchs_unsafe_advice(tmp_path, capsys):
    foreign = tmp_path / "other.pt"
    foreign.write_bytes(pickle.dumps({"weights": {1, 2}}))  # sets are refused by weights_only loading
    assert main(["evaluate", str(foreign), "--data", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {foreign}: not a fer_search model or ensemble file (it does not load as one)\n"


def test_small_cnn_learns_the_synthetic_set_well_above_the_majority_class():
    data = make_synthetic(n_train=2000, n_test=200, seed=0)
    majority = np.bincount(data.val.labels).max() / len(data.val)
    config = TrainConfig.from_flat({"arch": "simple_cnn", "widths": (16, 32), "kernel_size": 5, "fc_width": 64,
                                    "dropout": 0.0, "epochs": 5, "batch_size": 32, "lr": 2e-3, "schedule": "none"})
    result = train(config, data, device="cpu", progress=False)
    assert result.best.metrics["val_acc"] > majority + 0.15, (result.best.metrics["val_acc"], majority)


@pytest.mark.gpu
def test_cuda_training_matches_the_cpu_contract(small_data):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 1, "batch_size": 64, "augment": 1.0})
    result = train(config, small_data, device="cuda", progress=False)
    assert np.isfinite(result.history[0]["val_loss"]) and result.best.entry["state_dict"]
    probs = load_predictor(result.best.entry, device="cuda").predict_proba(small_data.val.images)
    np.testing.assert_allclose(probs, result.best.val_probs, atol=2e-2)  # bf16 autocast in training-time eval
