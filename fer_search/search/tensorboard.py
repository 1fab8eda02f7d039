"""TensorBoard for one trial: per-epoch curves, the HParams tab, the confusion matrix at the best epoch.

Tags: loss/{train,val}, accuracy/{train,val}, macro_f1/val, recall/<class> (validation), lr,
speed/images_per_s, best/{val_acc,val_macro_f1,test_acc} (the best epoch so far; test is reported,
never selected on) and the image confusion_matrix/val, written at every new best epoch (the last
one is the best epoch's).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from fer_search.data.types import CLASS_NAMES

BEST_TAGS = ("best/val_acc", "best/val_macro_f1", "best/test_acc")
_CURVES = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train", "val_acc": "accuracy/val",
           "val_macro_f1": "macro_f1/val", "lr": "lr", "images_per_s": "speed/images_per_s"}


class TrialBoard:
    def __init__(self, log_dir: str, config: dict[str, Any]):
        self.writer = SummaryWriter(log_dir)
        # The HParams plugin shows a trial's hyperparameters next to the last value of each metric tag.
        values = {key: _hparam(value) for key, value in config.items()}
        experiment, session_start, _ = hparams(values, dict.fromkeys(BEST_TAGS, 0.0))
        file_writer = self.writer._get_file_writer()
        file_writer.add_summary(experiment)
        file_writer.add_summary(session_start)

    def log_epoch(self, metrics: dict[str, float], best_metrics: dict[str, float], is_best: bool,
                  val_probs: np.ndarray, val_labels: np.ndarray) -> None:
        epoch = int(metrics["epoch"])
        for key, tag in _CURVES.items():
            if key in metrics:
                self.writer.add_scalar(tag, metrics[key], epoch)
        for name in CLASS_NAMES:
            self.writer.add_scalar(f"recall/{name}", metrics[f"val_recall_{name}"], epoch)
        for tag in BEST_TAGS:
            key = tag.split("/", 1)[1]
            if key in best_metrics:
                self.writer.add_scalar(tag, best_metrics[key], epoch)
        if is_best:
            self.writer.add_figure("confusion_matrix/val", confusion_figure(val_probs, val_labels, epoch), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def confusion_figure(probs: np.ndarray, labels: np.ndarray, epoch: int):
    """The validation confusion matrix of a new best epoch."""
    import matplotlib

    matplotlib.use("Agg")  # trials run headless
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    from fer_search.training.metrics import draw_confusion_matrix

    matrix = confusion_matrix(labels, probs.argmax(1), labels=range(len(CLASS_NAMES)))
    figure, axes = plt.subplots(figsize=(6, 5.2))
    draw_confusion_matrix(axes, matrix, f"validation, epoch {epoch} (best so far)")
    figure.tight_layout()
    return figure


def _hparam(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
