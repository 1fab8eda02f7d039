"""Search spaces: one module per model family, or a user's own file.

A space holds the documented configurations of a family ("points", evaluated first, in order) and
the ranges TPE searches around them. The same five entries make up a family module (upper case,
e.g. `PARAMS = {...}`) and a user's space file (`.py` with the module's names, or `.yaml`/`.json`
with lower-case keys):

    family          a model family (`python -m fer_search models` lists them); a module's name is its family
    gpus_per_trial  the default GPU fraction of one trial (several small trials share a GPU)
    fixed           {key: value} every trial starts from (points may override)
    points          {name: {key: value}} documented configurations, merged over `fixed`; a key a
                    point leaves out takes `fixed`'s value, else the trainer's or the model's default
    params          {key: spec} the TPE ranges, sampled in this order. spec is one of
                      {"choice": [v1, v2, ...]}, {"float": [low, high]}, {"log": [low, high]},
                      {"int": [low, high]}
                    plus optional {"if": {other_key: value or [values]}}: the key is only sampled when
                    the earlier key (a param or a fixed key) has that value. A list of such specs
                    gives a key ranges that depend on another choice (the first whose "if" holds):
                      "lr": [{"log": [0.01, 0.1], "if": {"optimizer": "sgd"}},
                             {"log": [1e-4, 3e-3], "if": {"optimizer": ["adam", "adamw"]}}]

Keys are trainer options (`TrainConfig` fields) or hyperparameters of the family's models; `arch`
picks the model. A point's value outside the ranges (e.g. imbalance="both") runs as documented but
is not a TPE parameter of that trial. A point that names its own `epochs` runs its own budget: the
search's --max-epochs does not shorten it and ASHA does not stop it.

A family module of the series also holds what `reproduce` needs (`load_documented`): REPORTED,
{point: [Figures, ...]} with what the series' runs printed, each figure labelled by what it measures
(search_spaces/_reported.py), NOTES, {point: remark}, and REPRODUCE_ONLY, documented points that
`reproduce` runs but a search does not (simple_cnn's overfit check). Every point of such a module names
its own epochs. A family without REPORTED (vgg, vit: this project's additions) has nothing to reproduce.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_search.errors import UserError
from search_spaces._reported import Figures

FAMILIES = ("simple_cnn", "deeper_cnn", "attention_cnn", "vgg", "resnet", "vit", "mobilevit")
SPEC_KINDS = ("choice", "float", "log", "int")


@dataclass
class SearchSpace:
    family: str
    gpus_per_trial: float
    fixed: dict[str, Any]
    points: dict[str, dict[str, Any]]
    params: dict[str, dict[str, Any]]
    source: str  # module name or file path, for messages
    reported: dict[str, list[Figures]] = field(default_factory=dict)  # {point: [Figures]} (load_documented)
    notes: dict[str, str] = field(default_factory=dict)  # {point: remark} (load_documented)

    def point_config(self, name: str) -> dict[str, Any]:
        """The full configuration of point `name`: fixed, the point, then defaults for every param."""
        config = {**self.fixed, **self.points[name]}
        defaults = _defaults(config["arch"])
        for key, spec in self.params.items():
            if active(spec, config):
                config.setdefault(key, defaults.get(key))
        return config


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in family's space by name, or a user's space file (.py, .yaml, .yml, .json)."""
    if name_or_path in FAMILIES:
        module = importlib.import_module(f"search_spaces.{name_or_path}")
        raw = {key.lower(): getattr(module, key) for key in ("GPUS_PER_TRIAL", "FIXED", "POINTS", "PARAMS")}
        raw["family"] = name_or_path
        return validate(raw, f"search_spaces/{name_or_path}.py")
    path = Path(name_or_path)
    if path.suffix not in (".py", ".yaml", ".yml", ".json"):
        raise UserError(f"unknown family or space file '{name_or_path}'; families: {', '.join(FAMILIES)}; "
                        f"a space file ends in .py, .yaml, .yml or .json")
    if not path.is_file():
        raise UserError(f"space file {path} does not exist")
    return validate(_read_file(path), str(path))


def series_families() -> list[str]:
    """The families the series ran (their modules say what it reported): what `reproduce all` runs."""
    return [family for family in FAMILIES if hasattr(importlib.import_module(f"search_spaces.{family}"), "REPORTED")]


def load_documented(family: str) -> SearchSpace:
    """A family's documented series as `reproduce` runs it: the reproduce-only points first, then the
    search's points, each with its own epochs, and `reported` and `notes` from the module."""
    if family not in FAMILIES:
        raise UserError(f"unknown family '{family}'; families: {', '.join(FAMILIES)} (or all)")
    if family not in series_families():
        raise UserError(f"{family} is this project's addition, not a family the series ran: nothing to reproduce "
                        f"(the series' families: {', '.join(series_families())}; its 'vit' run is in mobilevit)")
    module = importlib.import_module(f"search_spaces.{family}")
    source = f"search_spaces/{family}.py"
    raw = {key.lower(): getattr(module, key) for key in ("GPUS_PER_TRIAL", "FIXED", "PARAMS")}
    raw.update(family=family, points={**getattr(module, "REPRODUCE_ONLY", {}), **module.POINTS})
    space = validate(raw, source)
    space.reported = {name: list(figures) for name, figures in module.REPORTED.items()}
    space.notes = dict(getattr(module, "NOTES", {}))
    for name, point in space.points.items():
        if "epochs" not in point:
            raise UserError(f"space {source}: points.{name}: a documented point names its own epochs")
    for name in [*space.reported, *space.notes]:
        if name not in space.points:
            raise UserError(f"space {source}: REPORTED or NOTES name {name}, which is not a point")
    for name, figures in space.reported.items():
        if not all(isinstance(f, Figures) for f in figures):
            raise UserError(f"space {source}: REPORTED.{name}: expected a list of Figures (search_spaces/_reported.py)")
    return space


def _read_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".py":
            spec = importlib.util.spec_from_file_location(f"_user_space_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            names = ("FAMILY", "GPUS_PER_TRIAL", "FIXED", "POINTS", "PARAMS")
            raw = {key.lower(): getattr(module, key) for key in names if hasattr(module, key)}
        elif path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            import yaml

            raw = yaml.safe_load(path.read_text())
    except Exception as exc:  # a syntax error of any of the three formats
        raise UserError(f"space file {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"space file {path}: expected a mapping with family, fixed, points, params")
    return raw


def validate(raw: dict[str, Any], source: str) -> SearchSpace:
    """Check every entry of a space; errors name the source and the entry at fault."""
    from fer_search.models import list_models

    def fail(where: str, message: str) -> None:
        raise UserError(f"space {source}: {where}: {message}")

    unknown = sorted(set(raw) - {"family", "gpus_per_trial", "fixed", "points", "params"})
    if unknown:
        fail(unknown[0], "unknown entry (expected family, gpus_per_trial, fixed, points, params)")
    family = raw.get("family")
    if family not in FAMILIES:
        fail("family", f"must be one of {', '.join(FAMILIES)}, got {family!r}")
    archs = list_models(family)
    fixed, points, params = (raw.get(key) or {} for key in ("fixed", "points", "params"))
    for key, value in (("fixed", fixed), ("points", points), ("params", params)):
        if not isinstance(value, dict):
            fail(key, f"must be a mapping, got {type(value).__name__}")
    gpus = raw.get("gpus_per_trial", 1.0)
    if not isinstance(gpus, (int, float)) or gpus <= 0 or (gpus > 1 and not float(gpus).is_integer()):
        fail("gpus_per_trial", f"must be a fraction in (0, 1] or a whole number, got {gpus!r}")
    fixed = {"arch": archs[0], **fixed}
    space = SearchSpace(family, float(gpus), fixed, {}, _validated_params(params, family, archs, fixed, fail), source)
    _add_points(space, points, archs, fail)
    return space


def _validated_params(params: dict[str, Any], family: str, archs: list[str], fixed: dict[str, Any],
                      fail) -> dict[str, Any]:
    """The TPE ranges, each checked against the trainer's options and the family's hyperparameters."""
    from fer_search.models import model_hparams
    from fer_search.training import TrainConfig

    trainer_keys = set(TrainConfig.__dataclass_fields__) - {"model"}
    model_keys = {key for arch in archs for key in model_hparams(arch)}
    earlier = set(fixed)
    for key, raw_spec in params.items():
        where = f"params.{key}"
        if key not in trainer_keys | model_keys | {"arch"}:
            known = ", ".join(sorted(trainer_keys | model_keys))
            fail(where, f"not a trainer option or a {family} hyperparameter (known: {known})")
        several = isinstance(raw_spec, list)
        if several and not raw_spec:
            fail(where, "an empty list of ranges")
        specs = []
        for i, spec in enumerate(raw_spec if several else [raw_spec]):
            here = f"{where}[{i}]" if several else where
            specs.append(_validate_spec(spec, here, key, family, archs, earlier, fail))
        params[key] = specs if several else specs[0]
        earlier.add(key)
    return params


def _add_points(space: SearchSpace, points: dict[str, Any], archs: list[str], fail) -> None:
    """The documented points, each a whole trainer configuration of the space's family."""
    from fer_search.models import model_family
    from fer_search.training import TrainConfig

    if not points:
        fail("points", "at least one starting configuration is needed")
    for name, point in points.items():
        if not isinstance(point, dict):
            fail(f"points.{name}", f"must be a mapping of key: value, got {point!r}")
        space.points[str(name)] = {k: _plain(v) for k, v in point.items()}
        config = {**space.fixed, **space.points[str(name)]}
        if config.get("arch") not in archs:
            fail(f"points.{name}.arch", f"must be one of {', '.join(archs)}, got {config.get('arch')!r}")
        try:
            TrainConfig.from_flat(config)
        except UserError as exc:
            fail(f"points.{name}", str(exc))
        if model_family(config["arch"]) != space.family:
            fail(f"points.{name}.arch", f"{config['arch']} is not a {space.family} model")


def _validate_spec(spec: Any, where: str, key: str, family: str, archs: list[str], earlier: set[str],
                   fail) -> dict[str, Any]:
    if not isinstance(spec, dict):
        fail(where, f"expected a mapping like {{'log': [1e-4, 1e-2]}}, got {spec!r}")
    spec = {k: _plain(v) for k, v in spec.items()}
    kinds = [k for k in spec if k in SPEC_KINDS]
    extra = sorted(set(spec) - set(SPEC_KINDS) - {"if"})
    if len(kinds) != 1 or extra:
        fail(where, f"needs exactly one of {', '.join(SPEC_KINDS)} (plus optional 'if'), got {sorted(spec)}")
    kind, values = kinds[0], spec[kinds[0]]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            fail(where, f"'choice' needs a non-empty list, got {values!r}")
        if key == "arch" and set(values) - set(archs):
            fail(where, f"arch choices must be {family} models ({', '.join(archs)}), got {values}")
    else:
        numbers = isinstance(values, list) and len(values) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numbers or values[0] >= values[1] or (kind == "log" and values[0] <= 0) or (
                kind == "int" and not all(float(v).is_integer() for v in values)):
            fail(where, f"'{kind}' needs [low, high] with low < high"
                        + (" and low > 0" if kind == "log" else "") + (", whole numbers" if kind == "int" else "")
                        + f", got {values!r}")
    condition = spec.get("if", {})
    if not isinstance(condition, dict):
        fail(f"{where}.if", f"expected a mapping like {{'optimizer': 'sgd'}}, got {condition!r}")
    for other in condition:
        if other not in earlier:
            fail(f"{where}.if", f"'{other}' must be a fixed key or a param listed before '{key}'")
    return spec


def _defaults(arch: str) -> dict[str, Any]:
    from fer_search.models import model_hparams
    from fer_search.training import TrainConfig

    trainer = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items() if name != "model"}
    return {key: _plain(value) for key, value in {**trainer, **model_hparams(arch)}.items()}


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively: YAML, JSON and Ray's params.json all speak lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def alternatives(spec: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A param's specs: one, or the list of ranges that depend on another choice."""
    return spec if isinstance(spec, list) else [spec]


def active_spec(spec: dict[str, Any] | list[dict[str, Any]], config: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(index, spec) of the first alternative whose "if" holds for the configuration decided so far, or None."""
    for i, candidate in enumerate(alternatives(spec)):
        if all(config.get(key) in (wanted if isinstance(wanted, list) else [wanted])
               for key, wanted in (candidate.get("if") or {}).items()):
            return i, candidate
    return None


def active(spec: dict[str, Any] | list[dict[str, Any]], config: dict[str, Any]) -> bool:
    """Whether a param is sampled at all for the configuration decided so far."""
    return active_spec(spec, config) is not None


def in_range(spec: dict[str, Any], value: Any) -> bool:
    """Whether `value` is one TPE could sample from `spec` (one alternative)."""
    if "choice" in spec:
        return value in spec["choice"]
    low, high = spec.get("float") or spec.get("log") or spec.get("int")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return low <= value <= high and ("int" not in spec or float(value).is_integer())


def describe(space: SearchSpace) -> str:
    """A readable listing for `python -m fer_search spaces FAMILY`."""
    lines = [f"{space.family}  ({space.source}; {space.gpus_per_trial:g} GPU per trial by default)",
             "", "points (the documented configurations, evaluated first, in this order):"]
    for name, point in space.points.items():
        lines.append(f"  {name:<18} " + ", ".join(f"{k}={_show(v)}" for k, v in point.items()))
    changed = {k for point in space.points.values() for k in point} | set(space.params)
    fixed = ", ".join(f"{k}={_show(v)}" for k, v in space.fixed.items() if k not in changed) or "-"
    starts = ", ".join(f"{k}={_show(v)}" for k, v in space.fixed.items() if k in changed)
    lines += ["", f"fixed for every trial: {fixed}"]
    if starts:
        lines.append(f"defaults that points or TPE ranges change: {starts}")
    lines += ["", "TPE ranges:"]
    for key, param in space.params.items():
        for spec in alternatives(param):
            kind = next(k for k in SPEC_KINDS if k in spec)
            values = spec[kind]
            shown = " | ".join(_show(v) for v in values) if kind == "choice" else f"{kind} [{values[0]:g}, {values[1]:g}]"
            condition = "".join(f"  if {k} = {_show(v)}" for k, v in (spec.get("if") or {}).items())
            lines.append(f"  {key:<18} {shown}{condition}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
