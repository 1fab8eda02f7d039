"""Search spaces: the built-in families, the define-by-run sampler, and clear errors for bad space files."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
import pytest

from fer_search.errors import UserError
from fer_search.search.sampler import META_KEYS, SpaceSampler, point_seed
from fer_search.training import TrainConfig
from search_spaces import FAMILIES, active_spec, in_range, load_documented, load_space, series_families

DOCUMENTED = {
    "simple_cnn": ["v1", "v2", "v3"],
    "deeper_cnn": ["v1", "v2", "v3"],
    "attention_cnn": ["v1", "v2", "v3", "v4"],
    "vgg": ["khaireddin2021"],
    "resnet": ["resnet18_config1", "resnet18_config2", "resnet34_config1", "resnet34_config2", "resnet50"],
    "vit": ["native"],
    "mobilevit": ["vit"],
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
    assert (v3["imbalance"], v3["optimizer"], v3["lr"], v3["batch_norm"]) == ("both", "adamw", 1e-3, True)
    assert "both" not in simple.params["imbalance"]["choice"]  # reachable only as the documented point
    config2 = resnet.point_config("resnet18_config2")
    assert (config2["optimizer"], config2["lr"], config2["batch_size"], config2["dropout"]) == ("sgd", 1e-2, 32, 0.5)
    assert config2["momentum"] == 0.9
    assert "momentum" not in resnet.point_config("resnet18_config1")  # inactive for adam
    vit = load_space("vit").point_config("native")
    assert vit["mode"] == "native" and "variant" not in vit  # resized-only ranges are off


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
    # Points first, families interleaved, each exactly as documented plus the run's overrides; a
    # documented point's own epochs win over the run's.
    order = [(c["family"], c["point"]) for c in configs[:8]]
    assert order == [("simple_cnn", "v1"), ("resnet", "resnet18_config1"), ("simple_cnn", "v2"),
                     ("resnet", "resnet18_config2"), ("simple_cnn", "v3"), ("resnet", "resnet34_config1"),
                     ("resnet", "resnet34_config2"), ("resnet", "resnet50")]
    for config in configs[:8]:
        space = spaces[0] if config["family"] == "simple_cnn" else spaces[1]
        expected = {**space.point_config(config["point"]), "seed": point_seed(3, config["family"], config["point"]),
                    "split_seed": 3}
        assert {k: config[k] for k in expected} == expected and config["epochs"] != 7
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


# (family, point): the budget the series' run behind the figures ran, as the trainer gets it.
DOCUMENTED_BUDGETS = {
    ("simple_cnn", "v1"): dict(epochs=30, patience=5, schedule="none", batch_size=32, optimizer="adam", lr=1e-3,
                               input_scaling="symmetric"),
    ("simple_cnn", "v2"): dict(epochs=20, patience=5, schedule="none", batch_size=32, lr=1e-3, weight_decay=0.0,
                               hflip=0.5, rotate=10.0, brightness=0.2, contrast=0.2, translate=None),
    ("simple_cnn", "v3"): dict(epochs=20, patience=5, optimizer="adamw", weight_decay=1e-4, imbalance="both"),
    ("deeper_cnn", "v1"): dict(epochs=40, patience=10, plateau_patience=5, schedule="plateau", batch_size=32,
                               grad_clip=1.0, imbalance="weighted_loss"),
    ("deeper_cnn", "v2"): dict(epochs=50, patience=10, plateau_patience=5, schedule="plateau", batch_size=64),
    ("deeper_cnn", "v3"): dict(epochs=50, patience=10, plateau_patience=5, augment=1.0),
    ("attention_cnn", "v1"): dict(epochs=40, patience=0, schedule="none", batch_size=64, optimizer="adam", lr=5e-4),
    ("attention_cnn", "v2"): dict(epochs=20, patience=0, batch_size=128, lr=5e-4),
    ("attention_cnn", "v3"): dict(epochs=20, schedule="cosine", cosine_t_max=10, batch_size=64, lr=3e-4,
                                  label_smoothing=0.1),
    ("attention_cnn", "v4"): dict(epochs=30, patience=7, batch_size=64, lr=1e-4, weight_decay=1e-3),
    ("resnet", "resnet18_config2"): dict(epochs=20, patience=10, optimizer="sgd", momentum=0.9, nesterov=False,
                                         batch_size=32, lr=1e-2, schedule="step", step_size=10, step_gamma=0.1),
    ("resnet", "resnet50"): dict(epochs=20, patience=10, batch_size=32, optimizer="adam", weight_decay=1e-4),
    ("mobilevit", "vit"): dict(epochs=20, patience=0, schedule="cosine", warmup_fraction=0.1, warmup_epochs=0.0,
                               batch_size=128, optimizer="adamw", lr=2e-5, weight_decay=1e-4,
                               pretrained="timm_if_cached", input_scaling="symmetric"),
}
DOCUMENTED_MODELS = {
    ("simple_cnn", "v1"): dict(widths=[32, 64, 128], kernel_size=3, fc_width=512, batch_norm=False, dropout=0.5,
                               dropout_before_fc=False),
    ("deeper_cnn", "v1"): dict(widths=[32, 64, 128, 256], convs_per_block=[2, 2, 2, 1], fc_width=[512, 256],
                               dropout=0.5),
    ("deeper_cnn", "v2"): dict(widths=[32, 64, 128, 192], spatial_dropout=[0.1, 0.2, 0.3, 0.4], fc_width=[256, 128],
                               dropout=0.6),
    ("attention_cnn", "v4"): dict(dropout=0.3, attention="channel", reduction=8),
    ("resnet", "resnet50"): dict(stem="imagenet", imagenet_input=True, dropout=0.5),
    ("mobilevit", "vit"): dict(input_size=224),
}


def test_documented_budgets_reach_the_trainer_whatever_the_runs_max_epochs():
    spaces = [load_space(family) for family in FAMILIES]
    sampler = SpaceSampler(spaces, {"epochs": 3, "seed": 0})
    study = _study(sampler)
    configs = {}
    for _ in range(sum(len(s.points) for s in spaces)):
        config = sampler(study.ask())
        configs[config["family"], config["point"]] = config
    for point, expected in DOCUMENTED_BUDGETS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = TrainConfig.from_flat({k: v for k, v in configs[point].items() if k not in META_KEYS})
        assert {key: getattr(trainer, key) for key in expected} == expected, point
        assert {key: trainer.model[key] for key in DOCUMENTED_MODELS.get(point, {})} == DOCUMENTED_MODELS.get(point, {})
    # Every point names its own budget but the native ViT's, this project's starting point, not a run of the series.
    assert {(f, p) for f, p in configs if (f, p) not in sampler.budgeted_points} == {("vit", "native")}
    # A smoke run cuts every trial's epochs, documented points included; ASHA still lets those run to their end.
    smoke = SpaceSampler(spaces[:1], {"epochs": 3, "seed": 0}, point_budgets=False)
    assert smoke(_study(smoke).ask())["epochs"] == 3 and not smoke.budgeted_points
    assert smoke.scheduled_points == {(spaces[0].family, name) for name in spaces[0].points}


@pytest.mark.parametrize("family", series_families())
def test_documented_series_for_reproduce(family):
    documented = load_documented(family)
    search = load_space(family)
    assert list(documented.points)[-len(search.points):] == list(search.points)
    assert all("epochs" in point for point in documented.points.values())
    assert set(documented.reported) == set(documented.points)  # every point of the series printed figures


def test_the_overfit_check_is_a_reproduce_only_point():
    simple = load_documented("simple_cnn")
    assert list(simple.points) == ["baseline", "v1", "v2", "v3"] and "baseline" not in load_space("simple_cnn").points
    baseline = simple.point_config("baseline")
    assert (baseline["overfit_images"], baseline["widths"], baseline["kernel_size"]) == (200, [64], 3)
    assert [f.values for f in simple.reported["baseline"]] == [{"perfect_val_epoch": 13}]
    assert simple.reported["v3"][0].values["disgust"] == "only"


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


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "benchmarks").glob("*space*.yaml")),
                         ids=lambda path: path.name)
def test_the_benchmarks_space_files_load_and_their_points_are_valid(path):
    """The benchmarks' spaces are run only by scripts too slow for the tests: a typo must fail here."""
    space = load_space(str(path))
    assert space.points
    for name in space.points:
        TrainConfig.from_flat(space.point_config(name))


def test_run_help_names_every_family_and_one_global_budget(capsys):
    """`run --help` lists the families from search_spaces (vgg was missing from a hand-written list) and says
    that --num-samples/--max-epochs are one number for the whole search, not a default per family."""
    from fer_search.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for family in FAMILIES:
        assert family in text, family
    assert text.count("not per family") == 1 and "one number for every family" in text
