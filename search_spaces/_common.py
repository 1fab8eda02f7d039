"""TPE ranges shared by every family: optimiser, learning rate, regularisation, batch size,
augmentation, schedule and the imbalance option. Each family module adds its architecture's own.

`imbalance` omits "both" on purpose: the documented v3 run that combined weighted loss with
oversampling collapsed to predicting only 'disgust', so only that documented point runs it.
"""
from __future__ import annotations

from typing import Any


def training_params(*, optimizers=("adam", "adamw"), lr=(1e-4, 3e-3), weight_decay=(1e-6, 1e-3),
                    batch_sizes=(32, 64, 128)) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {
        "optimizer": {"choice": list(optimizers)},
        "lr": {"log": list(lr)},
    }
    if "sgd" in optimizers:
        params["momentum"] = {"float": [0.8, 0.95], "if": {"optimizer": "sgd"}}
        params["nesterov"] = {"choice": [False, True], "if": {"optimizer": "sgd"}}
    params.update({
        "weight_decay": {"log": list(weight_decay)},
        "batch_size": {"choice": list(batch_sizes)},
        "augment": {"float": [0.0, 1.5]},  # strength of the documented augmentation list
        "label_smoothing": {"float": [0.0, 0.2]},
        "schedule": {"choice": ["plateau", "cosine", "onecycle"]},
        "warmup_epochs": {"float": [0.0, 2.0], "if": {"schedule": "cosine"}},
        "imbalance": {"choice": ["none", "weighted_loss", "oversample"]},
    })
    return params
