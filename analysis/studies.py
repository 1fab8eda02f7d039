"""The searches' Optuna studies: side by side for `leaderboard`, parameter importance for the report."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna
import pandas as pd

from analysis import AnalysisWarning, plots
from fer_search.errors import UserError
from fer_search.search import study
from fer_search.search.record import load_record
from fer_search.search.storage import StoragePath

# Optuna's default evaluator (PED-ANOVA) compares the best tenth of the completed trials with all of them:
# below ten completed trials that best tenth is not yet a group, and the ranking would be noise.
MIN_COMPLETED_FOR_IMPORTANCE = 10
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def _studies(experiment_dirs: list[Path]) -> dict[study.StudyLocation, list[str]]:
    """Each study recorded by the experiments, with the experiments that ran trials in it (a continued study
    has several). Experiments that kept no study database (older ones) are left out."""
    found: dict[study.StudyLocation, list[str]] = {}
    for folder in experiment_dirs:
        location = _recorded(folder)
        if location is not None:
            found.setdefault(location, []).append(folder.name)
    return found


def _recorded(folder: Path | StoragePath) -> study.StudyLocation | None:
    """study.recorded(folder); an experiment in a bucket has no study.db beside it: its record names the database."""
    if not isinstance(folder, StoragePath) or folder.local_path is not None:
        return study.recorded(folder)
    record = load_record(folder)
    if record is None or not (record.study_name and record.study_storage):
        return None
    return study.StudyLocation(record.study_storage, record.study_name)


def study_table(experiment_dirs: list[Path]) -> pd.DataFrame:
    """One row per study: its experiments, trials by Optuna state, the best value and trial."""
    rows = []
    for location, experiments in _studies(experiment_dirs).items():
        try:
            loaded = study.load(location)
        except UserError as exc:
            warnings.warn(f"experiment {', '.join(experiments)}: {exc}", AnalysisWarning, stacklevel=2)
            continue
        trials = loaded.get_trials(deepcopy=False)
        counts = {state.lower(): sum(t.state.name == state for t in trials) for state in STATES}
        best = loaded.best_trial if counts["complete"] else None
        rows.append({"study": location.study_name, "experiments": ", ".join(experiments), "trials": len(trials),
                     **counts, "objective": loaded.user_attrs.get(study.OBJECTIVE_ATTR, "-"),
                     "best": best.value if best else float("nan"), "best_trial": best.number if best else "-",
                     "database": location.storage})
    return pd.DataFrame(rows)


def param_importance(loaded: optuna.Study) -> tuple[pd.Series | None, str]:
    """Importances by Optuna's default evaluator over the completed trials (ASHA-stopped ones are PRUNED,
    so not counted), or None and the reason."""
    completed = _completed(loaded)
    if completed < MIN_COMPLETED_FOR_IMPORTANCE:
        return None, (f"Study '{loaded.study_name}' has {completed} completed trial(s); parameter importance needs at "
                      f"least {MIN_COMPLETED_FOR_IMPORTANCE} (Optuna's evaluator compares the best tenth of them with "
                      "all of them). Run more trials, or continue the study with `run --continue-study`.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the evaluator's notes on small parameter regimes
        importances = optuna.importance.get_param_importances(loaded)
    return pd.Series(importances, dtype=float), ""


def importance_section(experiment_dirs: list[Path], out: Path) -> list[str]:
    """The report's markdown lines: per study, its importance figure (written into `out`) or why there is none."""
    lines = []
    for location, experiments in _studies(experiment_dirs).items():
        loaded = study.load(location)
        importances, reason = param_importance(loaded)
        if importances is None:
            lines += [reason, ""]
            continue
        title = f"study {location.study_name} ({_completed(loaded)} completed trials)"
        path = plots.param_importance(importances, out / f"param_importance_{_file_safe(location.study_name)}.png",
                                      title)
        lines += [f"Study '{location.study_name}' (experiments: {', '.join(experiments)}), by Optuna's default "
                  "importance evaluator over its completed trials:", "", f"![{title}]({path.name})", ""]
    return lines or ["No Optuna study is recorded for these experiments (no study database).", ""]


def _completed(loaded: optuna.Study) -> int:
    return sum(t.state.name == "COMPLETE" for t in loaded.get_trials(deepcopy=False))


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
