"""The search spaces as one Optuna define-by-run function: documented points first, then TPE.

Every trial's configuration is flat (trainer options and model hyperparameters at the top level)
plus four labels (META_KEYS): `family`, `point` (the documented point's name, or "tpe"),
`trial_number` (Optuna's, which orders and names the trial directories) and `split_seed` (the
search's seed, which carved the validation split). A TPE trial trains with seed `split_seed +
trial_number`: trials that differ in their random draws make a better ensemble than copies. A documented
point trains with `point_seed(split_seed, family, point)`, whatever else runs beside it, so `run
simple_cnn`, `reproduce simple_cnn` and `reproduce all` train the same model for it. Optuna parameter
names carry the family ("resnet.lr") so that families with different choices for the same key can
share one study; non-scalar choices (layer widths) are given to Optuna as their JSON text.

A documented point that names its own `epochs` keeps them over the run's `--max-epochs`
(budgeted_points), so it runs as the notes ran it; the scheduler in ray_adaptations.py lets it run to its
end (scheduled_points), a --smoke run's cut schedule too. A point without its own epochs is a
starting configuration like any other trial.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from search_spaces import SearchSpace, active_spec, in_range

TPE_POINT = "tpe"
META_KEYS = ("family", "point", "trial_number", "split_seed")


def point_seed(seed: int, family: str, point: str) -> int:
    """A documented point's training seed, from the run's seed and the point's name: sha256, which is the
    same in every process (Python's hash() of a string is salted per process)."""
    digest = hashlib.sha256(f"{seed}/{family}/{point}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1  # below 2**31: torch and numpy take it


class SpaceSampler:
    """Callable on an Optuna trial -> the trial's configuration. Plain data only: Ray pickles it
    with the searcher's state, which `--resume` loads again."""

    def __init__(self, spaces: list[SearchSpace], overrides: dict[str, Any], *, point_budgets: bool = True,
                 point_epochs: dict[str, int] | None = None):
        self.spaces = {space.family: space for space in spaces}
        self.overrides = dict(overrides)  # run-wide settings (epochs, metric, seed, ...) every trial gets
        # Points a planned budget gives epochs of their own ("family/point" -> epochs: SearchSettings.point_epochs).
        self.planned_epochs = {tuple(key.split("/", 1)): int(e) for key, e in (point_epochs or {}).items()}
        # (family, point) of the points with their own schedule, which ASHA lets run to its end ...
        self.scheduled_points = {(family, name) for family, space in self.spaces.items()
                                 for name, point in space.points.items() if "epochs" in point} | set(self.planned_epochs)
        # ... and keep their own epochs; none of the documented ones when the run cuts every trial's epochs (--smoke).
        self.budgeted_points = set(self.scheduled_points) if point_budgets else set(self.planned_epochs)

    def documented_points(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """(Optuna parameters to enqueue, user attributes) per documented point, families interleaved
        so that a time budget still reaches every family's first point."""
        per_family = [[(family, name) for name in space.points] for family, space in self.spaces.items()]
        out = []
        for family, name in (p for group in itertools.zip_longest(*per_family) for p in group if p):
            space = self.spaces[family]
            config = space.point_config(name)
            params = {"family": family} if len(self.spaces) > 1 else {}
            for key, spec in space.params.items():
                found = active_spec(spec, config)
                # A documented value outside the ranges (imbalance="both") runs, but is no TPE observation.
                if key in config and found is not None and in_range(found[1], config[key]):
                    params[_optuna_name(family, key, spec, found[0])] = _label(config[key])
            out.append((params, {"family": family, "point": name}))
        return out

    def __call__(self, trial) -> dict[str, Any]:
        point = trial.user_attrs.get("point")
        if len(self.spaces) > 1:
            family = trial.suggest_categorical("family", list(self.spaces))
        else:
            family = next(iter(self.spaces))
        space = self.spaces[family]
        config = space.point_config(point) if point else dict(space.fixed)
        for key, spec in space.params.items():
            found = active_spec(spec, config)
            if found is None or (point and not in_range(found[1], config[key])):
                continue
            # For a documented point Optuna returns the enqueued value, so TPE learns from it.
            config[key] = _suggest(trial, _optuna_name(family, key, spec, found[0]), found[1])
        run_wide = dict(self.overrides)
        if (family, point) in self.planned_epochs:
            run_wide["epochs"] = self.planned_epochs[(family, point)]
        elif (family, point) in self.budgeted_points:
            del run_wide["epochs"]
        seed = run_wide.get("seed", 0)
        trial_seed = point_seed(seed, family, point) if point else seed + trial.number
        return {**config, **run_wide, "seed": trial_seed, "family": family,
                "point": point or TPE_POINT, "trial_number": trial.number, "split_seed": seed}


def _optuna_name(family: str, key: str, spec, index: int) -> str:
    """"resnet.lr"; a key with ranges per another choice gets one Optuna parameter per range ("resnet.lr#0")."""
    return f"{family}.{key}" + (f"#{index}" if isinstance(spec, list) else "")


def _suggest(trial, name: str, spec: dict[str, Any]) -> Any:
    if "choice" in spec:
        labels = [_label(c) for c in spec["choice"]]
        return spec["choice"][labels.index(trial.suggest_categorical(name, labels))]
    if "int" in spec:
        return trial.suggest_int(name, *spec["int"])
    low, high = spec.get("float") or spec["log"]
    return trial.suggest_float(name, low, high, log="log" in spec)


def _label(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value
