"""The `reproduce` table: each documented point as the notes reported it and as this run measured it.

Ray-free: it reads the trial files of a finished `reproduce` experiment (layout.py). Measured at the
best epoch by validation accuracy, the model a run keeps: train, val and test accuracy, test
macro-F1, whether the model predicts disgust, and per-class validation recall (at the best and at
the last epoch, so a collapse like simple_cnn v3's shows either way); plus the epoch the trainer
stopped at and why, and for the overfit check the first epoch with 100% validation accuracy.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from fer_search.data.types import CLASS_NAMES
from fer_search.search import layout
from search_spaces import SearchSpace

# quantity: (label, kind); kind decides how a value and a difference are shown.
QUANTITIES = {
    "stopped_epoch": ("stopped at epoch", "count"),
    "ended_by": ("ended by", "text"),
    "perfect_val_epoch": ("100% val by epoch", "count"),
    "train_acc": ("train acc*", "accuracy"),
    "val_acc": ("val acc", "accuracy"),
    "test_acc": ("test acc", "accuracy"),
    "test_macro_f1": ("test macro-F1", "score"),
    "disgust": ("predicts disgust (val)", "text"),
    "train_minutes": ("training minutes", "minutes"),
    "recall_best": ("val recall per class, best epoch", "text"),
    "recall_last": ("val recall per class, last epoch", "text"),
}
SHOWN_IF_REPORTED = ("perfect_val_epoch", "train_minutes")  # the other quantities are shown for every point
DISGUST = CLASS_NAMES.index("disgust")
ENDINGS = {"max_epochs": "all its epochs", "early_stopping": "early stopping"}  # the trainer's finished_by
TABLE_NAME = "reproduce"  # reproduce.md and reproduce.csv beside the trials
CSV_COLUMNS = ["family", "version", "configuration", "quantity", "notes", "this_run", "difference"]


def build_table(spaces: list[SearchSpace], trials: list[layout.Trial]) -> list[dict[str, Any]]:
    """One row per (documented point, quantity), in the spaces' order, with raw values: fractions for
    accuracies, numbers for epochs; difference = this run - notes, where both are numbers."""
    by_point = {(t.family, t.point): t for t in trials}
    rows = []
    for space in spaces:
        for name, point in space.points.items():
            reported = space.reported.get(name, {})
            trial = by_point.get((space.family, name))
            measured = measure(trial) if trial is not None else {}
            configuration = ", ".join(f"{k}={_plain(v)}" for k, v in {**space.fixed, **point}.items())
            for key in QUANTITIES:
                if key in SHOWN_IF_REPORTED and key not in reported:
                    continue
                notes, here = reported.get(key), measured.get(key)
                rows.append({"family": space.family, "version": name, "configuration": configuration,
                             "quantity": key, "notes": notes, "this_run": here, "difference": _difference(notes, here)})
    return rows


def measure(trial: layout.Trial) -> dict[str, Any]:
    """The table's quantities from one trial's files; only `ended_by` before its first epoch."""
    summary = trial.summary()
    epochs = trial.progress
    if summary is None or epochs.empty:
        return {"ended_by": trial.status}
    best = summary["metrics"]
    best_row = epochs.loc[epochs["epoch"] == summary["best_epoch"]].iloc[0]
    perfect = epochs.loc[epochs["val_acc"] >= 1.0, "epoch"]
    return {
        "stopped_epoch": int(epochs["epoch"].iloc[-1]),
        "ended_by": ENDINGS.get(trial.finished_by, trial.status),
        "perfect_val_epoch": int(perfect.iloc[0]) if len(perfect) else "not reached",
        "train_acc": float(best_row["train_acc"]),
        "val_acc": best["val_acc"],
        "test_acc": best.get("test_acc"),
        "test_macro_f1": best.get("test_macro_f1"),
        "disgust": _disgust(np.load(trial.probs_path)["val_probs"].argmax(1)),
        "train_minutes": trial.last_result.get("time_total_s", 0.0) / 60,
        "recall_best": _recalls(best),
        "recall_last": _recalls(epochs.iloc[-1]),
    }


def _disgust(predicted: np.ndarray) -> str:
    """"never", "only", or how many of the validation images the model calls disgust."""
    count = int((predicted == DISGUST).sum())
    if count == 0:
        return "never"
    return "only" if count == len(predicted) else f"{count:,} of {len(predicted):,}"


def _recalls(metrics) -> str:
    return " ".join(f"{name[:2]} {metrics[f'val_recall_{name}']:.2f}" for name in CLASS_NAMES)


def _difference(notes: Any, here: Any) -> Any:
    if isinstance(notes, str) and isinstance(here, str) and notes in ("never", "only"):
        return "same" if notes == here else "differs"
    if isinstance(notes, (int, float)) and isinstance(here, (int, float)):
        return here - notes
    return None


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value).replace(" ", "") if isinstance(value, (list, dict)) else str(value)


def _cell(kind: str, value: Any, difference: bool = False) -> str:
    """A markdown cell: accuracies in %, their differences in percentage points; "-" where nothing is known."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    sign = "+" if difference else ""
    if kind == "accuracy":
        return f"{100 * value:{sign}.2f}" + (" pp" if difference else "%")
    if kind == "score":
        return f"{value:{sign}.3f}"
    if kind == "minutes":
        return f"{value:{sign}.1f}"
    return f"{value:{sign}d}"


def to_markdown(rows: list[dict[str, Any]], *, header: list[str], notes: dict[str, str]) -> str:
    """The table as markdown, each point's configuration on its first row, with the footnotes."""
    lines = [*header, "", "| version | configuration | quantity | notes | this run | difference |", "|---" * 6 + "|"]
    previous = None
    for row in rows:
        version = f"{row['family']} {row['version']}"
        label, kind = QUANTITIES[row["quantity"]]
        first = version != previous
        previous = version
        cells = [f"**{version}**" if first else "", f"`{row['configuration']}`" if first else "", label,
                 _cell(kind, row["notes"]), _cell(kind, row["this_run"]), _cell(kind, row["difference"], difference=True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* train acc: the running accuracy over the best epoch's training batches (augmented, dropout on), "
        "as a notebook's training loop measures it; not the kept model on clean training images.",
        "",
        "Measured at the best epoch by val acc (the model a run keeps); \"stopped at\" is the last epoch trained; "
        "test is reported, never selected on; \"-\": not reported, or not measured. Recall: "
        + ", ".join(f"{name[:2]} = {name}" for name in CLASS_NAMES) + ".",
    ]
    if notes:
        lines += ["", "What the notes say besides:", *(f"- {version}: {note}" for version, note in notes.items())]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, Any]], directory: str | Path, *, header: list[str],
                notes: dict[str, str]) -> tuple[Path, Path, str]:
    """reproduce.md and reproduce.csv (raw values, quantity labels) in `directory`; returns both paths and
    the markdown."""
    directory = Path(directory)
    markdown = to_markdown(rows, header=header, notes=notes)
    md_path = directory / f"{TABLE_NAME}.md"
    md_path.write_text(markdown)
    csv_path = directory / f"{TABLE_NAME}.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "quantity": QUANTITIES[row["quantity"]][0]} for row in rows)
    return md_path, csv_path, markdown


def point_notes(spaces: list[SearchSpace]) -> dict[str, str]:
    """The notes' remarks on single points (REPORTED's `note`), for the table's footnotes."""
    return {f"{s.family} {name}": figures["note"] for s in spaces for name, figures in s.reported.items()
            if "note" in figures}
