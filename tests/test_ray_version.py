"""The Ray that fer_search is tested with: pinned to its minor version, and every private Ray attribute that
fer_search/search uses still there. A Ray upgrade that drops one fails here, naming it, instead of deep inside
a search (a resumed search that silently forgets its rungs, a searcher that raises mid-run)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import ray
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent

# Every private attribute of Ray's that fer_search/search reads, overrides or sets, by the Ray object that has it.
PRIVATE_RAY_ATTRIBUTES = {
    "OptunaSearch": ("_ot_study", "_ot_trials", "_completed_trials", "_space", "_sampler", "_study_name", "_storage"),
    "ASHAScheduler": ("_trial_info", "_num_stopped", "_time_attr", "_metric", "_metric_op", "_brackets"),
    "ASHAScheduler._brackets[0]": ("_rungs", "on_result"),
    "SearchGenerator": ("_finished", "_total_samples", "_counter"),
    "WandbLoggerCallback": ("_start_logging_actor",),
    "CSVLoggerCallback": ("_setup_trial", "_trial_files", "_trial_csv", "_trial_continue"),
    "ray._private.ray_constants": ("ENABLE_RAY_CLUSTER",),
}


def _ray_objects() -> dict[str, object]:
    """One object of each Ray class (or module) in PRIVATE_RAY_ATTRIBUTES, made as fer_search makes them."""
    from ray._private import ray_constants
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import SearchGenerator
    from ray.tune.logger import CSVLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=lambda trial: {"x": trial.suggest_float("x", 0, 1)}, metric="m", mode="max")
    asha = ASHAScheduler(time_attr="training_iteration", metric="m", mode="max", max_t=9, grace_period=1)
    brackets = getattr(asha, "_brackets", None) or [SimpleNamespace()]
    return {"OptunaSearch": searcher, "ASHAScheduler": asha, "ASHAScheduler._brackets[0]": brackets[0],
            "SearchGenerator": SearchGenerator(searcher), "WandbLoggerCallback": WandbLoggerCallback,
            "CSVLoggerCallback": CSVLoggerCallback(),
            "ray._private.ray_constants": ray_constants}


def missing_attributes(objects: dict[str, object], expected: dict[str, tuple[str, ...]]) -> list[str]:
    return [f"{owner}.{name}" for owner, names in expected.items() for name in names
            if not hasattr(objects[owner], name)]


def test_every_private_ray_attribute_fer_search_uses_is_there():
    missing = missing_attributes(_ray_objects(), PRIVATE_RAY_ATTRIBUTES)
    assert not missing, (f"Ray {ray.__version__} no longer has {', '.join(missing)}, which fer_search/search uses; "
                         "fer_search is tested with the Ray that pyproject.toml pins: install that one, or adapt the "
                         "code that uses it (grep fer_search/search for the attribute)")


def test_a_missing_attribute_is_named():
    objects = {"OptunaSearch": SimpleNamespace(_ot_study=None)}
    assert missing_attributes(objects, {"OptunaSearch": ("_ot_study", "_ot_trials")}) == ["OptunaSearch._ot_trials"]


def test_the_list_holds_every_private_name_the_search_code_uses():
    """A private name used in fer_search/search that the code does not define itself must be in the list above."""
    listed = {name for names in PRIVATE_RAY_ATTRIBUTES.values() for name in names} | {"_private"}
    unlisted = {}
    for path in (ROOT / "fer_search" / "search").glob("*.py"):
        source = path.read_text()
        if not re.search(r"^\s*(import ray|from ray)", source, re.MULTILINE):
            continue
        own = set(re.findall(r"(?:self|cls)\.(_\w+)\s*(?::[^=\n]+)?=(?!=)", source))
        own |= set(re.findall(r"^\s*(?:def|class)\s+(_\w+)", source, re.MULTILINE))
        own |= set(re.findall(r"^\s*(_\w+)\s*(?::[^=\n]+)?=", source, re.MULTILINE))  # class or module attributes
        used = set(re.findall(r"\.(_[a-z]\w*)", source)) - own - listed
        if used:
            unlisted[path.name] = sorted(used)
    assert not unlisted, f"private attributes used but not checked in PRIVATE_RAY_ATTRIBUTES: {unlisted}"


def test_ray_is_pinned_to_the_tested_minor_version():
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [ray_requirement] = [Requirement(r) for r in requirements if Requirement(r).name == "ray"]
    installed = Version(ray.__version__)
    next_minor = Version(f"{installed.major}.{installed.minor + 1}")
    assert installed in ray_requirement.specifier, f"{ray_requirement} excludes the Ray installed here ({installed})"
    assert next_minor not in ray_requirement.specifier, (
        f"{ray_requirement} allows Ray {next_minor}, which fer_search was not tested with (it uses Ray's private "
        "attributes: see PRIVATE_RAY_ATTRIBUTES)")
