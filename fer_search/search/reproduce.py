"""The `reproduce` table: each documented point as the series' runs printed it and as this run measured it.

Ray-free: it reads the trial files of a finished `reproduce` experiment (layout.py). Like is compared with
like: a figure of the run's best epoch (by validation accuracy) with this run's best epoch, a figure of the
run's last epoch with this run's last epoch trained, each on a validation split that also chose the kept
model and stopped the run, as the series' did (search_spaces/_reported.py says what each figure measures).
Beside them, the column the series never had: the kept model's accuracy and macro-F1 on the held-out test
split, which chose nothing. Per-class validation recall at the best and the last epoch shows a collapse like
simple_cnn v3's either way.
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
from search_spaces._reported import Figures

# quantity: (label, kind); kind decides how a value and a difference are shown.
QUANTITIES = {
    "epoch": ("epoch", "count"),
    "perfect_val_epoch": ("first epoch at 100% val", "count"),
    "train_acc": ("train acc*", "accuracy"),
    "val_acc": ("val acc", "accuracy"),
    "val_macro_f1": ("val macro-F1", "score"),
    "disgust_recall": ("val recall of disgust", "score"),
    "disgust": ("predicts disgust (val)", "text"),
    "ended_by": ("ended by", "text"),
    "init": ("initial weights", "text"),
    "test_acc": ("held-out test acc", "accuracy"),
    "test_macro_f1": ("held-out test macro-F1", "score"),
    "recall_best": ("val recall per class, best epoch", "text"),
    "recall_last": ("val recall per class, last epoch", "text"),
}
DISGUST = CLASS_NAMES.index("disgust")
ENDINGS = {"max_epochs": "all its epochs", "early_stopping": "early stopping"}  # the trainer's finished_by
TABLE_NAME = "reproduce"  # reproduce.md, reproduce.csv and reproduce.json beside the trials
CSV_COLUMNS = ["family", "version", "configuration", "source", "measures", "quantity", "the_run", "this_run",
               "this_epoch", "difference"]
HELD_OUT = "the kept model (best epoch) on the held-out test split, which chose nothing"


def build_table(spaces: list[SearchSpace], trials: list[layout.Trial]) -> list[dict[str, Any]]:
    """Rows in the spaces' order: per documented point, one per reported figure (beside this run's figure
    measured alike), then this run's held-out test figures and what else it measured. Raw values: fractions
    for accuracies, numbers for epochs; difference = this run - the run, where both are numbers."""
    by_point = {(t.family, t.point): t for t in trials}
    rows = []
    for space in spaces:
        for name, point in space.points.items():
            trial = by_point.get((space.family, name))
            measured = measure(trial) if trial is not None else {}
            base = {"family": space.family, "version": name,
                    "configuration": ", ".join(f"{k}={_plain(v)}" for k, v in {**space.fixed, **point}.items())}
            for figures in space.reported.get(name, []):
                rows += _compared(base, figures, measured)
            rows += [{**base, "source": "this run", "measures": HELD_OUT, "quantity": key, "the_run": None,
                      "this_run": measured.get("best", {}).get(key), "this_epoch": measured.get("best", {}).get("epoch"),
                      "difference": None} for key in ("test_acc", "test_macro_f1")]
            extras = ["ended_by", "recall_best", "recall_last"] + (["init"] if "pretrained" in point else [])
            rows += [{**base, "source": "this run", "measures": "", "quantity": key, "the_run": None,
                      "this_run": measured.get(key), "this_epoch": None, "difference": None} for key in extras]
    return rows


def _compared(base: dict[str, Any], figures: Figures, measured: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure of `figures`, and one for its epoch, each beside this run's at the same kind of epoch
    (an epoch the source does not say, best or last, is compared with the best: the model a run keeps)."""
    here = measured.get("last" if figures.at == "last" else "best", {})
    quantities = dict(figures.values)
    if figures.epoch is not None:
        quantities = {"epoch": figures.epoch, **quantities}
    rows = []
    for key, value in quantities.items():
        this = measured.get(key) if key == "perfect_val_epoch" else here.get(key)
        rows.append({**base, "source": figures.source, "measures": figures.measures(), "quantity": key,
                     "the_run": value, "this_run": this, "this_epoch": here.get("epoch"),
                     "difference": _difference(value, this)})
    return rows


def measure(trial: layout.Trial) -> dict[str, Any]:
    """This run's figures from one trial's files: at its best epoch ("best", with the held-out test figures of
    the kept model) and its last epoch ("last"); only `ended_by` before its first epoch."""
    summary = trial.summary()
    epochs = trial.epoch_table
    if summary is None or epochs.empty:
        return {"ended_by": trial.status}
    best_row = epochs.loc[epochs["epoch"] == summary["best_epoch"]].iloc[0]
    perfect = epochs.loc[epochs["val_acc"] >= 1.0, "epoch"]
    kept = summary["metrics"]
    return {
        "best": {**_at(best_row), "disgust": _disgust(np.load(trial.probs_path)["val_probs"].argmax(1)),
                 "test_acc": kept.get("test_acc"), "test_macro_f1": kept.get("test_macro_f1")},
        "last": _at(epochs.iloc[-1]),
        "perfect_val_epoch": int(perfect.iloc[0]) if len(perfect) else "not reached",
        "ended_by": ENDINGS.get(trial.finished_by, trial.status),
        "init": _initial_weights(trial),
        "recall_best": _recalls(best_row),
        "recall_last": _recalls(epochs.iloc[-1]),
    }


def _at(row) -> dict[str, Any]:
    return {"epoch": int(row["epoch"]), "train_acc": float(row["train_acc"]), "val_acc": float(row["val_acc"]),
            "val_macro_f1": float(row["val_macro_f1"]), "disgust_recall": float(row[f"val_recall_{CLASS_NAMES[DISGUST]}"])}


def _initial_weights(trial: layout.Trial) -> str | None:
    """What the trainer recorded in the kept model file: pretrained weights, or random init and why."""
    from fer_search.training import checkpoint

    return checkpoint.load(trial.model_path).get("init") if trial.model_path else None


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
    return f"{value:{sign}d}"


def to_markdown(rows: list[dict[str, Any]], *, header: list[str], notes: dict[str, str]) -> str:
    """The table as markdown, each point's configuration on its first row, with the footnotes."""
    lines = [*header, "", "| version | the run's figure: source, what it measures | quantity | the run | this run "
                          "| epoch | difference |", "|---" * 7 + "|"]
    previous, previous_what = None, None
    for row in rows:
        version = f"{row['family']} {row['version']}"
        label, kind = QUANTITIES[row["quantity"]]
        first = version != previous
        what = f"{row['source']}: {row['measures']}" if row["measures"] else row["source"]
        shown = what if first or what != previous_what else ""  # once per group of figures measured alike
        previous, previous_what = version, what
        cells = [f"**{version}** `{row['configuration']}`" if first else "", shown, label,
                 _cell(kind, row["the_run"]), _cell(kind, row["this_run"]),
                 "-" if row["this_epoch"] is None else str(row["this_epoch"]),
                 _cell(kind, row["difference"], difference=True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* train acc: the running accuracy over an epoch's training batches (augmented, dropout on), as the "
        "series' notebooks measured it; not the kept model on clean training images.",
        "",
        "This run measures each figure as the run's was measured: at its best epoch by val acc, or at its last "
        "epoch trained, on a validation split that also chose the kept model and stopped the run (the series' "
        "splits held exact duplicates on both sides; this one keeps them on one side, so it scores a little "
        "lower). The held-out test figures are the kept model's on the test split, which chose nothing; no run "
        "of the series scored one. \"-\": not printed, or not measured. Recall: "
        + ", ".join(f"{name[:2]} = {name}" for name in CLASS_NAMES) + ".",
    ]
    if notes:
        lines += ["", "Remarks:", *(f"- {version}: {note}" for version, note in notes.items())]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, Any]], directory: str | Path, *, header: list[str],
                notes: dict[str, str]) -> tuple[Path, Path, str]:
    """reproduce.md, reproduce.csv (raw values, quantity labels) and reproduce.json (the rows, for
    benchmarks/results.py) in `directory`; returns the markdown's and the CSV's paths and the markdown."""
    directory = Path(directory)
    markdown = to_markdown(rows, header=header, notes=notes)
    md_path = directory / f"{TABLE_NAME}.md"
    md_path.write_text(markdown)
    csv_path = directory / f"{TABLE_NAME}.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "quantity": QUANTITIES[row["quantity"]][0]} for row in rows)
    (directory / f"{TABLE_NAME}.json").write_text(json.dumps({"reproduce": rows}, indent=1) + "\n")
    return md_path, csv_path, markdown


def point_notes(spaces: list[SearchSpace]) -> dict[str, str]:
    """The modules' remarks on single points (NOTES), for the table's footnotes."""
    return {f"{s.family} {name}": note for s in spaces for name, note in s.notes.items()}
