"""Score every member and the ensemble side by side, and write OUT/report.md with its figures."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots, studies
from analysis.ensemble import Ensemble
from analysis.intervals import CONFIDENCE, Gain, accuracy_gain
from analysis.leaderboard import PRINTED, best_per_family, imbalance_comparison, read_epoch_table
from fer_search.data.types import CLASS_NAMES
from fer_search.training.metrics import full_report

ENSEMBLE = "ensemble"


@dataclass
class Scores:
    """full_report (accuracy, macro-F1, ECE, per class, confusion) per split and model name."""

    reports: dict[str, dict[str, dict]]
    # per split and member: the ensemble's accuracy minus the member's on the same images, with its interval
    gains: dict[str, dict[str, Gain]] = field(default_factory=dict)

    def summary(self, weights: dict[str, float]) -> pd.DataFrame:
        rows = []
        for name, weight in weights.items():
            row = {"model": name, "weight": weight}
            for split, by_model in self.reports.items():
                r = by_model[name]
                row.update({f"{split}_acc": r["accuracy"], f"{split}_macro_f1": r["macro_f1"],
                            f"{split}_ece": r["ece"]})
            rows.append(row)
        return pd.DataFrame(rows).set_index("model")

    def gain_table(self) -> pd.DataFrame:
        """One row per member: the ensemble's accuracy gain over it and the interval's ends, per split."""
        rows = [{"member": member, f"{split}_gain": g.gain, f"{split}_low": g.low, f"{split}_high": g.high}
                for split, by_member in self.gains.items() for member, g in by_member.items()]
        return pd.DataFrame(rows).groupby("member", sort=False).first() if rows else pd.DataFrame()

    def per_class(self, split: str, key: str) -> pd.DataFrame:
        return pd.DataFrame({name: {c: r["per_class"][c][key] for c in CLASS_NAMES}
                             for name, r in self.reports[split].items()}).T


def score(ensemble: Ensemble) -> Scores:
    """Validation, and test once when it has labels: each member alone, the ensemble before and after
    its temperature (which changes calibration, never the predicted class)."""
    reports, gains = {}, {}
    for split in ensemble.labeled_splits():
        labels = ensemble.labels(split)
        probs = {m.name: m.probs[f"{split}_probs"] for m in ensemble.members}
        probs[f"{ENSEMBLE} (T=1)"] = ensemble.probs(split, temperature=1.0)
        probs[ENSEMBLE] = ensemble.probs(split)
        reports[split] = {name: full_report(p, labels) for name, p in probs.items()}
        correct = {name: p.argmax(axis=1) == labels for name, p in probs.items()}
        gains[split] = {m.name: accuracy_gain(correct[ENSEMBLE], correct[m.name]) for m in ensemble.members}
    return Scores(reports, gains)


def write_report(ensemble: Ensemble, scores: Scores, trials_table: pd.DataFrame, out: Path, *,
                 command: str, candidates: int, files: dict[str, Path], refit: dict | None = None) -> Path:
    """OUT/report.md plus its PNG figures in OUT/. `files` names the other outputs to list; `refit` is the
    full_report of the refit ensemble on test, when there is one."""
    weights = {m.name: float(w) for m, w in zip(ensemble.members, ensemble.weights)}
    weights.update({f"{ENSEMBLE} (T=1)": 1.0, ENSEMBLE: 1.0})
    summary = scores.summary(weights)
    splits = list(scores.reports)
    figures = _figures(ensemble, scores, trials_table, out)

    lines = [
        "# Ensemble report", "",
        f"Made by `{command}` on {datetime.now():%Y-%m-%d %H:%M}.", "",
        f"- Experiments: {', '.join(sorted({m.trial.experiment for m in ensemble.members}))}",
        f"- Candidates: {candidates} finished trials; members: "
        + (f"{len(ensemble.members)} chosen by bagged greedy selection from the best {ensemble.library} by "
           f"{ensemble.metric}" if ensemble.library else f"the top {len(ensemble.members)} by {ensemble.metric}"),
        f"- Method: {ensemble.method}; temperature {ensemble.temperature:.3f}; test-time augmentation: {ensemble.tta}",
        "",
        "**Selection of the members, the vote weights and the temperature used the validation split only. "
        + ("The test split was scored once, after all of them were fixed; its figures are reported and were "
           "never used for any choice.**" if "test" in splits else "The test split has no labels, so only "
           "validation figures are shown.**"),
        "",
        "## Members and ensemble", "",
        _markdown(summary.reset_index()), "",
        "`ensemble (T=1)` is the vote before temperature scaling: same predictions, different calibration (ECE).", "",
        "## Ensemble against each member", "",
        f"The ensemble's accuracy minus the member's on the same images, and its {CONFIDENCE:.0%} paired-bootstrap "
        "interval (images resampled): where the interval holds 0, this split cannot tell the two apart. Validation "
        "chose the members and weights, so its gain leans optimistic; test's does not.", "",
        _markdown(scores.gain_table().reset_index()), "",
    ]
    if refit is not None:
        validated = scores.reports["test"][ENSEMBLE]
        table = pd.DataFrame([{"ensemble": name, "trained on": on, "test_acc": r["accuracy"],
                               "test_macro_f1": r["macro_f1"], "test_ece": r["ece"]}
                              for name, on, r in (("validated", "train", validated),
                                                  ("refit", "train + validation", refit))])
        lines += ["## Refit ensemble", "",
                  "The same members, epoch counts, weights and temperature, each member retrained on train + "
                  "validation (nothing left to select on, so nothing was). Test scored once.", "",
                  _markdown(table), ""]
    for split in splits:
        recall = scores.per_class(split, "recall").reset_index(names="model")
        lines += [f"## Per-class recall ({_split_name(split)})", "", _markdown(recall), ""]
    lines += ["## Figures", ""]
    lines += [f"### {title}\n\n![{title}]({path.name})\n" for title, path in figures.items()]
    storage = ensemble.members[0].trial.path.parent.parent
    lines += ["## Parameter importance", "",
              *studies.importance_section([storage / name for name in trials_table["experiment"].unique()], out)]
    lines += ["## All trials: best per family", "",
              _markdown(best_per_family(trials_table, ensemble.metric)[PRINTED]), "",
              "## Class-imbalance options (validation, every trial with results)", "",
              _markdown(imbalance_comparison(trials_table).reset_index()), "",
              "## Files", ""]
    lines += [f"- `{path.name}`: {what}" for what, path in files.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _figures(ensemble: Ensemble, scores: Scores, trials_table: pd.DataFrame, out: Path) -> dict[str, Path]:
    figures = {
        "Confusion matrices of the ensemble": plots.confusion_matrices(
            {f"ensemble, {_split_name(s)}": np.asarray(r[ENSEMBLE]["confusion_matrix"])
             for s, r in scores.reports.items()},
            out / "confusion_matrices.png"),
    }
    for split in scores.reports:
        f1 = scores.per_class(split, "f1").drop(index=f"{ENSEMBLE} (T=1)")
        figures[f"Per-class F1 ({_split_name(split)})"] = plots.per_class_f1(
            f1, out / f"per_class_f1_{split}.png", f"per-class F1, {_split_name(split)}")
    figures["Members' learning curves"] = plots.learning_curves(
        {m.name: read_epoch_table(m.trial) for m in ensemble.members}, out / "learning_curves.png")
    figures["Class-imbalance options"] = plots.imbalance_comparison(
        imbalance_comparison(trials_table), out / "imbalance_comparison.png")
    return figures


def _split_name(split: str) -> str:
    return {"val": "validation", "test": "test"}[split]


def _markdown(table: pd.DataFrame) -> str:
    """A GitHub-style table (pandas' own to_markdown needs the optional `tabulate`)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if np.isnan(value) else f"{value:.4f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
