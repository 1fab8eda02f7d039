"""The report's figures, as PNG files (matplotlib's non-interactive Agg backend: works headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fer_search.training.metrics import draw_confusion_matrix  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrices(matrices: dict[str, np.ndarray], path: Path) -> Path:
    """One row-normalised confusion matrix per title (e.g. validation and test of the ensemble)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    for ax, (title, counts) in zip(axes[0], matrices.items()):
        draw_confusion_matrix(ax, counts, title, fontsize=7)
    return _save(fig, path)


def per_class_f1(f1: pd.DataFrame, path: Path, title: str) -> Path:
    """Grouped bars: rows of `f1` are models, columns are classes."""
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(f1)
    x = np.arange(len(f1.columns))
    for k, (name, row) in enumerate(f1.iterrows()):
        ax.bar(x + (k - (len(f1) - 1) / 2) * width, row.values, width, label=name)
    ax.set(title=title, ylabel="F1", ylim=(0, 1), xticks=x)
    ax.set_xticklabels(f1.columns)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def learning_curves(epoch_tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Validation accuracy and train/validation loss per epoch, one line per member."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, frame in epoch_tables.items():
        if frame.empty or "epoch" not in frame:
            continue
        line = acc_ax.plot(frame["epoch"], frame["val_acc"], marker=".", label=name)[0]
        loss_ax.plot(frame["epoch"], frame["val_loss"], color=line.get_color(), label=f"{name} val")
        if "train_loss" in frame:
            loss_ax.plot(frame["epoch"], frame["train_loss"], color=line.get_color(), linestyle="--")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.set(title="validation accuracy", xlabel="epoch")
    loss_ax.set(title="loss (solid: validation, dashed: train)", xlabel="epoch")
    acc_ax.legend(fontsize=7)
    return _save(fig, path)


def imbalance_comparison(table: pd.DataFrame, path: Path) -> Path:
    """Best and mean validation accuracy and mean disgust recall per imbalance option."""
    fig, ax = plt.subplots(figsize=(7, 4))
    columns = ["best_val_acc", "mean_val_acc", "mean_disgust_recall"]
    x = np.arange(len(table))
    for k, column in enumerate(columns):
        ax.bar(x + (k - 1) * 0.27, table[column].fillna(0).values, 0.27, label=column.replace("_", " "))
    ax.set(title="class-imbalance options (validation)", ylim=(0, 1), xticks=x)
    ax.set_xticklabels([f"{name}\n({n} trials)" for name, n in zip(table.index, table["trials"])])
    ax.legend(fontsize=8)
    return _save(fig, path)


def param_importance(importances: pd.Series, path: Path, title: str) -> Path:
    """Horizontal bars, most important parameter on top (importances sum to 1)."""
    ordered = importances.sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(ordered) + 1.2))
    ax.barh(range(len(ordered)), ordered.values)
    ax.set(title=f"parameter importance, {title}", xlabel="importance", yticks=range(len(ordered)))
    ax.set_yticklabels(ordered.index)
    return _save(fig, path)
