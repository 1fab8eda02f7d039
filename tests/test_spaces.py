"""Search spaces: the built-in families, the define-by-run sampler, and clear errors for bad space files."""
from __future__ import annotations

import json
import warnings

import optuna
import pytest

from fer_search.errors import UserError
from fer_search.search.sampler import META_KEYS, SpaceSampler
from fer_search.training import TrainConfig
from search_spaces import FAMILIES, active_spec, in_range, load_space

DOCUMENTED = {
    "simple_cnn": ["v1", "v2", "v3"],
    "deeper_cnn": ["v1", "v2", "v3"],
    "attention_cnn": ["v1", "v2", "v3", "v4"],
    "vgg": ["khaireddin2021"],
    "resnet": ["resnet18_config1", "resnet18_config2", "resnet34_config1", "resnet34_config2", "resnet50"],
    "vit": ["vit"],
    "mobilevit": ["mobilevit_xxs"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_documented_point_is_a_valid_configuration(family):
    space = load_space(family)
    assert list(space.points) == DOCUMENTED[family]
    for name in space.points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            TrainConfig.from_flat(space.point_config(name))


def test_documented_values():
    simple, resnet = load_space("simple_cnn"), load_space("resnet")
    v3 = simple.point_config("v3")
    assert (v3["imbalance"], v3["optimizer"], v3["lr"], v3["batch_norm"]) == ("both", "adamw", 5e-4, True)
    assert "both" not in simple.params["imbalance"]["choice"]  # reachable only as the documented point
    config2 = resnet.point_config("resnet18_config2")
    assert (config2["optimizer"], config2["lr"], config2["batch_size"], config2["dropout"]) == ("sgd", 1e-2, 32, 0.5)
    assert config2["momentum"] == 0.9  # sgd's conditional parameter takes the trainer's default
    assert "momentum" not in resnet.point_config("resnet18_config1")  # inactive for adam
    vit = load_space("vit").point_config("vit")
    assert vit["mode"] == "documented" and "patch_size" not in vit  # native-only ranges are off


def _study(sampler: SpaceSampler, seed: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    for params, attributes in sampler.documented_points():
        study.enqueue_trial(params, user_attrs=attributes)
    return study


def test_sampler_gives_documented_points_first_then_samples_in_range():
    spaces = [load_space("simple_cnn"), load_space("resnet")]
    sampler = SpaceSampler(spaces, {"epochs": 7, "seed": 3})
    study = _study(sampler)
    configs = []
    for _ in range(30):
        trial = study.ask()
        configs.append(sampler(trial))
        study.tell(trial, 0.5)
    # Points first, families interleaved, each exactly as documented plus the run's overrides.
    order = [(c["family"], c["point"]) for c in configs[:8]]
    assert order == [("simple_cnn", "v1"), ("resnet", "resnet18_config1"), ("simple_cnn", "v2"),
                     ("resnet", "resnet18_config2"), ("simple_cnn", "v3"), ("resnet", "resnet34_config1"),
                     ("resnet", "resnet34_config2"), ("resnet", "resnet50")]
    for config in configs[:8]:
        space = spaces[0] if config["family"] == "simple_cnn" else spaces[1]
        expected = {**space.point_config(config["point"]), "epochs": 7, "seed": 3 + config["trial_number"],
                    "split_seed": 3}
        assert {k: config[k] for k in expected} == expected
    assert [c["trial_number"] for c in configs] == list(range(30))
    for config in configs[8:]:
        space = spaces[0] if config["family"] == "simple_cnn" else spaces[1]
        assert config["point"] == "tpe" and config["epochs"] == 7
        for key, spec in space.params.items():
            found = active_spec(spec, config)
            assert (key in config and in_range(found[1], config[key])) or found is None, key
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
        # Ranges per optimiser: SGD's learning rates are an order of magnitude above Adam's.
        low, high = {"sgd": (0.01, 0.1), "adam": (1e-4, 3e-3), "adamw": (3e-4, 3e-3)}[config["optimizer"]]
        assert low <= config["lr"] <= high
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            TrainConfig.from_flat({k: v for k, v in config.items() if k not in META_KEYS})
    assert {c["family"] for c in configs[8:]} == {"simple_cnn", "resnet"}
    assert any(isinstance(c["widths"], list) for c in configs if c["family"] == "simple_cnn")


def _write(tmp_path, text: str, suffix: str = ".yaml"):
    path = tmp_path / f"space{suffix}"
    path.write_text(text)
    return str(path)


GOOD = {"family": "simple_cnn", "fixed": {"widths": [8, 16]}, "points": {"a": {"lr": 0.001}},
        "params": {"lr": {"log": [1e-4, 1e-2]}, "optimizer": {"choice": ["adam", "sgd"]},
                   "momentum": {"float": [0.8, 0.9], "if": {"optimizer": "sgd"}}}}


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".py"])
def test_space_file_formats(tmp_path, suffix):
    if suffix == ".py":
        text = "\n".join(f"{key.upper()} = {value!r}" for key, value in GOOD.items())
    else:
        text = json.dumps(GOOD)  # JSON is YAML too
    space = load_space(_write(tmp_path, text, suffix))
    assert space.family == "simple_cnn" and space.fixed["arch"] == "simple_cnn"
    assert space.point_config("a")["widths"] == [8, 16]


@pytest.mark.parametrize("change, message", [
    ({"family": "cnn"}, "family: must be one of simple_cnn"),
    ({"extra": 1}, "extra: unknown entry"),
    ({"points": {}}, "points: at least one starting configuration"),
    ({"points": {"a": {"lr": 0.001, "colour": 3}}}, "points.a: unknown option 'colour' for simple_cnn"),
    ({"points": {"a": {"optimizer": "rmsprop"}}}, "points.a: option 'optimizer' must be one of adam, adamw, sgd"),
    ({"points": {"a": {"arch": "resnet18"}}}, "points.a.arch: must be one of simple_cnn"),
    ({"params": {"lr": {"log": [0, 1]}}}, "params.lr: 'log' needs [low, high] with low < high and low > 0"),
    ({"params": {"lr": {"float": [1, 0.1]}}}, "params.lr: 'float' needs [low, high] with low < high"),
    ({"params": {"lr": {"range": [1, 2]}}}, "params.lr: needs exactly one of choice, float, log, int"),
    ({"params": {"lr": [1e-4, 1e-2]}}, "params.lr[0]: expected a mapping like"),
    ({"params": {"depth": {"int": [1, 3]}}}, "params.depth: not a trainer option or a simple_cnn hyperparameter"),
    ({"params": {"momentum": {"float": [0.8, 0.9], "if": {"optimizer": "sgd"}}}},
     "params.momentum.if: 'optimizer' must be a fixed key or a param listed before 'momentum'"),
    ({"params": {"arch": {"choice": ["simple_cnn", "resnet18"]}}},
     "params.arch: arch choices must be simple_cnn models"),
    ({"gpus_per_trial": 1.5}, "gpus_per_trial: must be a fraction in (0, 1] or a whole number"),
])
def test_bad_space_entries_are_named(tmp_path, change, message):
    raw = {**GOOD, **change}
    path = _write(tmp_path, json.dumps(raw), ".json")
    with pytest.raises(UserError) as error:
        load_space(path)
    assert f"space {path}: {message}" in str(error.value)


def test_unreadable_space_files(tmp_path):
    with pytest.raises(UserError, match=r"space\.yaml: cannot be read \(ParserError"):
        load_space(_write(tmp_path, "family: [simple_cnn\n  points: {"))
    with pytest.raises(UserError, match="space file .*missing.yaml does not exist"):
        load_space(str(tmp_path / "missing.yaml"))
    with pytest.raises(UserError, match="unknown family or space file 'cnn'; families: simple_cnn"):
        load_space("cnn")
    with pytest.raises(UserError, match="expected a mapping with family"):
        load_space(_write(tmp_path, "- 1\n- 2\n"))
