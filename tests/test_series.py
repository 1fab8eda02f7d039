"""The series as it ran: the trainer options its runs needed (step schedule, gradient clipping, input scaling,
pretrained weights where cached), the documented points' architectures and figures, and per-point seeds."""
from __future__ import annotations

import subprocess
import sys
import warnings

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from fer_search.data import make_synthetic
from fer_search.errors import UserError
from fer_search.models import count_parameters, create_model
from fer_search.search.sampler import META_KEYS, SpaceSampler, point_seed
from fer_search.training import TrainConfig, train
from fer_search.training.checkpoint import load
from fer_search.training.trainer import input_normalization
from search_spaces import load_documented, load_space, series_families
from search_spaces._reported import SPLIT_B, Figures

TINY_CNN = {"arch": "simple_cnn", "widths": (8, 16), "kernel_size": 3, "fc_width": 32}

# Parameter counts the series' notebooks printed (attention_cnn's: calculated; it printed none).
PRINTED_PARAMETERS = [
    ("simple_cnn", "baseline", 4_720_263), ("simple_cnn", "v1", 2_456_071), ("simple_cnn", "v2", 2_456_519),
    ("deeper_cnn", "v1", 849_255), ("deeper_cnn", "v2", 593_063), ("attention_cnn", "v1", 333_415),
    ("resnet", "resnet18_config1", 11_180_103), ("resnet", "resnet34_config2", 21_288_263),
    ("resnet", "resnet50", 23_522_375),
]


@pytest.fixture(scope="module")
def small_data():
    return make_synthetic(n_train=600, n_test=200, seed=1)


def _train(small_data, **options):
    config = TrainConfig.from_flat({**TINY_CNN, "epochs": 1, "batch_size": 32, **options})
    return train(config, small_data, device="cpu", progress=False)


@pytest.mark.parametrize("family, point, parameters", PRINTED_PARAMETERS)
def test_documented_points_build_the_networks_the_notebooks_printed(family, point, parameters):
    config = TrainConfig.from_flat(load_documented(family).point_config(point))
    assert count_parameters(create_model(config.arch, **config.model)) == parameters


def test_step_schedule_multiplies_the_lr_every_step_size_epochs(small_data):
    result = _train(small_data, epochs=3, lr=0.1, schedule="step", step_size=2, step_gamma=0.1, max_train_images=64)
    assert [round(row["lr"], 6) for row in result.history] == [0.1, 0.1, 0.01]
    assert TrainConfig(schedule="step", patience=10).early_stopping  # the ResNets' early stopping applies
    with pytest.raises(UserError, match="'step_size' must be at least 1"):
        TrainConfig(schedule="step", step_size=0)


def _parameter_change(small_data, grad_clip: float) -> float:
    """Norm of what one plain SGD step with lr 1 changes in the parameters."""
    torch.manual_seed(0)  # the trainer seeds with config.seed, then builds the network first
    before = {k: v.detach().clone() for k, v in create_model("simple_cnn", **{k: v for k, v in TINY_CNN.items() if k != "arch"})
              .named_parameters()}
    result = _train(small_data, optimizer="sgd", momentum=0.0, lr=1.0, grad_clip=grad_clip, max_train_images=32,
                    seed=0, precision="fp32")
    after = result.best.entry["state_dict"]
    return float(torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before)))


def test_grad_clip_bounds_the_gradient_norm_of_a_step(small_data):
    assert _parameter_change(small_data, grad_clip=1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert _parameter_change(small_data, grad_clip=0.0) > 1e-2  # unclipped, the step is far larger
    with pytest.raises(UserError, match="'grad_clip' must be 0 or more"):
        TrainConfig(grad_clip=-1.0)


def test_input_scaling_options(small_data, tmp_path):
    images = small_data.train.images
    data_stats = (float(images.mean()) / 255, float(images.std()) / 255)
    scaled = {name: input_normalization(TrainConfig(arch="simple_cnn", input_scaling=name), images)
              for name in ("auto", "dataset", "symmetric", "unit")}
    assert scaled == {"auto": data_stats, "dataset": data_stats, "symmetric": (0.5, 0.5), "unit": (0.0, 1.0)}
    resnet = TrainConfig.from_flat({"arch": "resnet18", "stem": "imagenet", "imagenet_input": True})
    assert input_normalization(resnet, images) == (0.0, 1.0)  # ImageNet's statistics are applied inside the model
    result = _train(small_data, input_scaling="symmetric", max_train_images=64)
    assert result.best.entry["normalization"] == {"mean": 0.5, "std": 0.5}
    with pytest.raises(UserError, match="'input_scaling' must be one of"):
        TrainConfig(input_scaling="imagenet")


def test_missing_timm_weights_train_from_random_init_said_once_and_recorded(small_data, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    config = TrainConfig.from_flat({"arch": "mobilevit_xxs", "pretrained": "timm_if_cached", "epochs": 2,
                                    "batch_size": 32, "max_train_images": 32})
    train(config, small_data, device="cpu", out_dir=tmp_path / "out", progress=True)
    said = capsys.readouterr().err
    assert said.count("random init: pretrained weights for mobilevit_xxs not found offline") == 1
    assert load(tmp_path / "out" / "model.pt")["init"].startswith("random init: pretrained weights for mobilevit_xxs")


def test_point_seeds_come_from_the_seed_and_the_points_name_whatever_runs_beside_it():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = _configs(SpaceSampler([load_space("simple_cnn")], {"epochs": 20, "metric": "val_acc", "seed": 3}))
        series = _configs(SpaceSampler([load_documented(f) for f in series_families()],
                                       {"epochs": 20, "metric": "val_acc", "seed": 3}))
    documented = load_documented("simple_cnn")
    for point in ("v1", "v2", "v3"):
        run, reproduced = alone[("simple_cnn", point)], series[("simple_cnn", point)]
        assert run["trial_number"] != reproduced["trial_number"]  # other company, another trial number
        assert {k: v for k, v in run.items() if k not in META_KEYS} == \
               {k: v for k, v in reproduced.items() if k not in META_KEYS}  # the same training, seed included
        assert run["epochs"] == documented.points[point]["epochs"]
    seeds = {key: config["seed"] for key, config in series.items()}
    assert len(set(seeds.values())) == len(seeds)  # every point its own
    assert point_seed(4, "simple_cnn", "v1") != point_seed(3, "simple_cnn", "v1")
    # sha256, not Python's per-process salted hash(): the same in another process.
    code = "from fer_search.search.sampler import point_seed; print(point_seed(3, 'simple_cnn', 'v1'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": "123"})
    assert int(other.stdout) == seeds[("simple_cnn", "v1")] and 0 <= int(other.stdout) < 2**31


def _configs(sampler: SpaceSampler) -> dict[tuple[str, str], dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for params, attributes in sampler.documented_points():
        study.enqueue_trial(params, user_attrs=attributes)
    configs = {}
    for _ in sampler.documented_points():
        trial = study.ask()
        config = sampler(trial)
        configs[(config["family"], config["point"])] = config
        study.tell(trial, 0.5)
    return configs


def test_reported_figures_say_what_they_measure():
    for family in series_families():
        space = load_documented(family)
        for point, figures in space.reported.items():
            assert figures and all(isinstance(f, Figures) and f.split for f in figures), (family, point)
    resnet18 = load_documented("resnet").reported["resnet18_config1"]
    best = next(f for f in resnet18 if f.at == "best")
    # 65.31% is ResNet18's best-epoch val accuracy on the split that chose that epoch, not a test score.
    assert best.values["val_acc"] == 0.6531 and best.split == SPLIT_B and best.chose and best.epoch == 18
    assert "held-out" not in best.measures() and "chose the checkpoint" in best.measures()
    v1 = {(f.at, f.epoch): f.values for f in load_documented("simple_cnn").reported["v1"]}
    assert v1[("best", 12)] == {"val_acc": 0.5824} and v1[("last", 12)]["val_acc"] == 0.5766


def test_the_vit_run_is_mobilevit_and_vit_is_this_projects_addition():
    point = load_documented("mobilevit").point_config("vit")
    assert (point["arch"], point["input_size"], point["pretrained"]) == ("mobilevit_xxs", 224, "timm_if_cached")
    assert (point["input_scaling"], point["batch_size"], point["epochs"]) == ("symmetric", 128, 20)
    assert "vit" not in series_families() and "vgg" not in series_families()
    with pytest.raises(UserError, match="vit is this project's addition.*its 'vit' run is in mobilevit"):
        load_documented("vit")
    assert load_space("vit").point_config("native")["mode"] == "native"


def test_attention_and_resnet_points_run_what_the_notebooks_ran():
    attention = load_documented("attention_cnn").point_config("v1")
    assert (attention["attention"], attention["reduction"], attention["optimizer"], attention["lr"]) == \
           ("channel", 8, "adam", 5e-4)
    assert (attention["schedule"], attention["patience"], attention["epochs"]) == ("none", 0, 40)
    resnet = load_documented("resnet").point_config("resnet18_config2")
    assert (resnet["imagenet_input"], resnet["schedule"], resnet["step_size"], resnet["step_gamma"]) == \
           (True, "step", 10, 0.1)
    assert (resnet["optimizer"], resnet["momentum"], resnet["epochs"], resnet["patience"]) == ("sgd", 0.9, 20, 10)
    deeper = load_documented("deeper_cnn").point_config("v1")
    assert (deeper["imbalance"], deeper["grad_clip"], deeper["plateau_patience"], deeper["patience"]) == \
           ("weighted_loss", 1.0, 5, 10)
    assert np.isclose(load_documented("simple_cnn").point_config("v2")["rotate"], 10.0)


def test_the_benchmarks_target_is_the_reproduced_resnet18s_held_out_figure_once_measured(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "search_summary.py"
    spec = importlib.util.spec_from_file_location("search_summary", path)
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    results = tmp_path / "reproduce_all-cuda.json"
    assert summary.reproduced_target(results) is None  # not measured yet: no target, not 65.31%
    rows = [{"family": "resnet", "version": "resnet18_config1", "quantity": "val_acc", "this_run": 0.66},
            {"family": "resnet", "version": "resnet18_config1", "quantity": "test_acc", "this_run": 0.641}]
    results.write_text(json.dumps({"figures": {"data": "synthetic", "reproduce": rows}}))
    assert summary.reproduced_target(results) is None  # not on real data
    results.write_text(json.dumps({"figures": {"data": "/data/fer2013", "reproduce": rows}}))
    assert summary.reproduced_target(results) == 0.641
