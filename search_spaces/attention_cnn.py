"""attention_cnn (CBAM): the documented v1-v4 (documented-versions.md) and TPE ranges around them.

All versions share the architecture and the flip + rotation augmentation. v4's "lower lr" and
"weight decay raised" are read as 1e-4 and 1e-3; v3's cosine T_max 10 becomes the trainer's cosine
over the whole run.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "attention_cnn", "patience": 7}

_V1 = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "plateau", "dropout": 0.5,
       "hflip": 0.5, "rotate": 15.0, "batch_size": 64}
POINTS = {
    "v1": _V1,
    "v2": {**_V1, "batch_size": 128, "lr": 5e-4},  # the series' pick for its final ensemble
    "v3": {**_V1, "lr": 3e-4, "weight_decay": 5e-4, "dropout": 0.3, "label_smoothing": 0.1, "schedule": "cosine"},
    "v4": {**_V1, "lr": 1e-4, "weight_decay": 1e-3, "dropout": 0.3, "label_smoothing": 0.1, "patience": 7},
}

PARAMS = {
    "widths": {"choice": [[32, 64, 128], [64, 128, 256]]},
    "fc_width": {"choice": [128, 256]},
    "reduction": {"choice": [8, 16]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
