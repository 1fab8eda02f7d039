"""Every trial of the chosen experiments as one table, the best per family, and the imbalance comparison."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import AnalysisWarning
from fer_search.errors import UserError
from fer_search.search import layout
from fer_search.training.config import IMBALANCE_OPTIONS

NODE_SEPARATOR = "->"
METRIC_COLUMNS = ["val_acc", "val_macro_f1", "val_recall_disgust", "test_acc", "test_macro_f1"]
# Shown as their own columns, so left out of the "hyperparameters" summary.
OWN_COLUMNS = {"arch", "imbalance", "epochs", "metric", "seed", "family", "point", "trial_number", "split_seed"}


def find_trials(storage: str | Path, names: list[str] | None) -> list[layout.Trial]:
    names = names or layout.list_experiments(storage)
    if not names:
        raise UserError(f"no experiment found under {storage} (run a search first, or pass --storage)")
    return [trial for name in names for trial in layout.list_trials(storage, name)]


def search_metric(trials: list[layout.Trial], requested: str | None = None) -> str:
    """The validation metric the search selected on (every trial's config names it), unless one is requested."""
    if requested:
        return requested
    used = {t.config.get("metric", "val_acc") for t in trials}
    return used.pop() if len(used) == 1 else "val_acc"


def read_epoch_table(trial: layout.Trial) -> pd.DataFrame:
    """The trial's per-epoch table; a corrupt progress.csv gives a warning and an empty table."""
    try:
        return trial.epoch_table
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        warnings.warn(f"trial {trial.name}: unreadable progress.csv ({exc}); no per-epoch data", AnalysisWarning,
                      stacklevel=3)
        return pd.DataFrame()


def leaderboard(trials: list[layout.Trial], metric: str = "val_acc") -> pd.DataFrame:
    """One row per trial, best first by the validation `metric` (trials without results last)."""
    rows = []
    for trial in trials:
        config = dict(trial.config)
        rows.append({
            "experiment": trial.experiment, "trial": trial.name, "family": trial.family,
            "arch": config.get("arch", ""), "point": trial.point, "imbalance": config.get("imbalance", "none"),
            "epochs": trial.epochs, "status": trial.status, "device": trial.device, **_best_metrics(trial, metric),
            "node": _nodes(trial), "config": config,
        })
    table = pd.DataFrame(rows, columns=["experiment", "trial", "family", "arch", "point", "imbalance", "epochs",
                                        "status", "device", *METRIC_COLUMNS, "node", "config"])
    table[METRIC_COLUMNS] = table[METRIC_COLUMNS].astype(float)
    table.insert(table.columns.get_loc("epochs"), "hyperparameters", _varying(table["config"]))
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _best_metrics(trial: layout.Trial, metric: str) -> dict[str, float]:
    """Metrics at the best epoch: the stored summary's, else (running, errored, or summary unreadable)
    the best row of its epoch table."""
    try:
        summary = trial.summary()
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
        warnings.warn(f"trial {trial.name}: unreadable summary.json ({exc}); using its progress.csv",
                      AnalysisWarning, stacklevel=3)
        summary = None
    if summary is not None:
        found = summary.get("metrics", {})
    else:
        epochs = read_epoch_table(trial)
        scored = metric in epochs and epochs[metric].notna().any()
        found = epochs.loc[epochs[metric].idxmax()].to_dict() if scored else {}
    return {column: found.get(column, np.nan) for column in METRIC_COLUMNS}


def _nodes(trial: layout.Trial) -> str:
    """"1a2b3c4d", or "1a2b3c4d->5e6f7a8b" for a trial restored on another node after losing its own."""
    return NODE_SEPARATOR.join(layout.short_node_id(node) for node in trial.nodes)


def _varying(configs: pd.Series) -> list[str]:
    """Per trial, "key=value" for the hyperparameters that differ between the listed trials."""
    keys = sorted({k for c in configs for k in c} - OWN_COLUMNS)
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]
    return [" ".join(f"{k}={_short(c[k])}" for k in varying if k in c) for c in configs]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return json.dumps(value).replace(" ", "") if isinstance(value, (list, dict)) else str(value)


def best_per_family(table: pd.DataFrame, metric: str = "val_acc") -> pd.DataFrame:
    scored = table.dropna(subset=[metric])
    return scored.loc[scored.groupby("family", sort=True)[metric].idxmax()].sort_values(metric, ascending=False)


def imbalance_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Per imbalance option, over every trial with results (whatever budget ASHA gave it): trials,
    best and mean validation accuracy, mean validation recall of the rare class (disgust)."""
    scored = table.dropna(subset=["val_acc"])
    grouped = scored.groupby("imbalance")
    out = pd.DataFrame({
        "trials": grouped.size(),
        "best_val_acc": grouped["val_acc"].max(),
        "mean_val_acc": grouped["val_acc"].mean(),
        "mean_disgust_recall": grouped["val_recall_disgust"].mean(),
    })
    order = [o for o in IMBALANCE_OPTIONS if o in out.index] + [o for o in out.index if o not in IMBALANCE_OPTIONS]
    return out.loc[order].rename_axis("imbalance")


PRINTED = ["experiment", "trial", "family", "arch", "point", "imbalance", "hyperparameters", "epochs", "status",
           "device", *METRIC_COLUMNS]
# Printed headers, short enough that a row fits a wide terminal (the CSV keeps the full names).
SHORT_HEADERS = {"val_macro_f1": "val_f1", "val_recall_disgust": "disgust_rec", "test_macro_f1": "test_f1"}
HYPERPARAMETERS_WIDTH = 40


def format_tables(table: pd.DataFrame, metric: str = "val_acc") -> str:
    """The three tables as plain text."""
    fmt = {"float_format": lambda v: f"{v:.4f}", "index": False, "na_rep": "-"}
    counts = table["status"].value_counts()
    nodes = {node for ran_on in table["node"] for node in ran_on.split(NODE_SEPARATOR) if node}
    spread = len(nodes) > 1  # where each trial ran, once there is more than one place
    lines = [
        f"{len(table)} trials: " + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f"; sorted by {metric} (test columns are reported only, never used for selection)"
        + (f"; ran on {len(nodes)} nodes" if spread else ""),
        _printable(table, node=spread).to_string(**fmt),
        "",
        "best trial per family",
        _printable(best_per_family(table, metric)).to_string(**fmt),
        "",
        "class-imbalance options (validation; every trial with results)",
        imbalance_comparison(table).reset_index().to_string(**fmt),
    ]
    return "\n".join(lines)


def _printable(table: pd.DataFrame, node: bool = False) -> pd.DataFrame:
    """The printed columns: the experiment only when there are several, the node with `node`, hyperparameters
    cut to a width."""
    columns = [c for c in PRINTED if c != "experiment" or table["experiment"].nunique() > 1]
    columns += ["node"] if node else []
    shown = table[columns].rename(columns=SHORT_HEADERS)
    cut = HYPERPARAMETERS_WIDTH - 3
    shown["hyperparameters"] = [h if len(h) <= HYPERPARAMETERS_WIDTH else h[:cut] + "..."
                                for h in shown["hyperparameters"]]
    return shown
