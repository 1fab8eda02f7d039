"""Classification metrics shared by training, evaluation and analysis."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from fer_search.data.types import CLASS_NAMES


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of probabilities (the validation loss, and what ensembles are fitted on)."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def classification_keys(prefix: str = "") -> list[str]:
    """The keys of classification_metrics(..., prefix), in its order."""
    return [f"{prefix}acc", f"{prefix}macro_f1", *(f"{prefix}recall_{name}" for name in CLASS_NAMES)]


def classification_metrics(probs: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Accuracy, macro-F1 and per-class recall, as flat keys (`{prefix}acc`, `{prefix}recall_<class>`)."""
    predicted = probs.argmax(axis=1)
    classes = list(range(len(CLASS_NAMES)))
    _, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    out = {f"{prefix}acc": float((predicted == labels).mean()), f"{prefix}macro_f1": float(f1.mean())}
    out.update({f"{prefix}recall_{name}": float(r) for name, r in zip(CLASS_NAMES, recall)})
    return out


def draw_confusion_matrix(axes, counts: np.ndarray, title: str, *, fontsize: float | None = None) -> None:
    """A confusion matrix on matplotlib axes (TensorBoard's and the report's): rows true, columns predicted, counts
    in the cells, colour = share of the true class (so rare classes read as clearly)."""
    counts = np.asarray(counts)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        axes.text(col, row, str(count), ha="center", va="center", fontsize=fontsize,
                  color="white" if share[row, col] > 0.5 else "black")
    ticks = range(len(CLASS_NAMES))
    axes.set(title=title, xlabel="predicted", ylabel="true", xticks=ticks, yticks=ticks)
    axes.set_xticklabels(CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticklabels(CLASS_NAMES)


def full_report(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Everything `evaluate` prints: accuracy, macro-F1, per-class P/R/F1/support, confusion matrix, ECE."""
    predicted = probs.argmax(axis=1)
    classes = list(range(len(CLASS_NAMES)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    return {
        "images": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": float(f1.mean()),
        "ece": expected_calibration_error(probs, labels),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def format_report(report: dict) -> str:
    """The readable form of `full_report`: headline, per-class table, confusion matrix."""
    lines = [
        f"{report.get('split', '')} split of {report.get('data', '')}: {report['images']:,} images".strip(),
        f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   ECE {report['ece']:.4f}",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10}")
    lines += ["", "confusion matrix (rows = true, columns = predicted)", " " * 10 + "".join(f"{n[:7]:>8}" for n in CLASS_NAMES)]
    for name, row in zip(CLASS_NAMES, report["confusion_matrix"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)
