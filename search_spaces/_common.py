"""TPE ranges shared by every family: optimiser with per-optimiser learning rate and weight decay,
batch size, schedule, augmentation (strength, crops, erasing, Mixup/CutMix), weight EMA and the
imbalance option. Each family module adds its architecture's own.

The ranges are centred on FER2013 recipes that work: SGD with Nesterov at lr 0.01-0.1 (the VGG
recipes of Khaireddin & Chen 2021), AdamW with decoupled weight decay 0.01-0.1, Adam as the
documented series ran it. `imbalance` omits "both" on purpose: the documented v3 run that combined
weighted loss with oversampling collapsed to predicting only 'disgust', so only that documented
point runs it.
"""
from __future__ import annotations

from typing import Any

LR = {"sgd": [0.01, 0.1], "adam": [1e-4, 3e-3], "adamw": [3e-4, 3e-3]}
WEIGHT_DECAY = {"sgd": [1e-4, 1e-3], "adam": [1e-6, 1e-3], "adamw": [0.01, 0.1]}


def per_optimizer(ranges: dict[str, list[float]], optimizers) -> list[dict[str, Any]]:
    return [{"log": ranges[name], "if": {"optimizer": name}} for name in optimizers]


def training_params(*, optimizers=("sgd", "adam", "adamw"), batch_sizes=(32, 64, 128), crops=True,
                    lr: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """`crops=False` for models fixed at 48x48 input (a flatten layer, a fixed patch grid);
    `lr` replaces the learning-rate range of the optimisers it names."""
    params: dict[str, Any] = {
        "optimizer": {"choice": list(optimizers)},
        "lr": per_optimizer({**LR, **(lr or {})}, optimizers),
        "weight_decay": per_optimizer(WEIGHT_DECAY, optimizers),
    }
    if "sgd" in optimizers:
        params["momentum"] = {"float": [0.85, 0.95], "if": {"optimizer": "sgd"}}
        params["nesterov"] = {"choice": [True, False], "if": {"optimizer": "sgd"}}
    params.update({
        "batch_size": {"choice": list(batch_sizes)},
        "schedule": {"choice": ["onecycle", "cosine", "plateau"]},
        "warmup_epochs": {"float": [0.0, 2.0], "if": {"schedule": "cosine"}},
        "augment": {"float": [0.0, 1.5]},  # strength of the documented augmentation list
        "erasing": {"float": [0.0, 0.5]},  # random erasing, apart from the strength
    })
    if crops:
        params["crop"] = {"choice": [0, 44, 40]}  # random crops, ten-crop-ready; 0 = whole image
    params.update({
        "pad_crop": {"choice": [0, 4]},
        "mixup": {"choice": [0.0, 0.2]},
        "cutmix": {"choice": [0.0, 1.0]},
        "ema": {"choice": [0.0, 0.999]},
        "label_smoothing": {"float": [0.0, 0.2]},
        "imbalance": {"choice": ["none", "weighted_loss", "oversample"]},
    })
    return params
