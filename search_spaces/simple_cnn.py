"""simple_cnn: the documented v1-v3 (documented-versions.md) and TPE ranges around them.

The documented baseline (one conv, trained and validated on the same 200 images) checks that the
pipeline can overfit; it is not a search point.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "simple_cnn", "widths": [32, 64], "kernel_size": 5, "fc_width": 128, "patience": 5}

_V2 = {"batch_norm": True, "dropout": 0.4, "augment": 1.0, "optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-4,
       "batch_size": 64, "schedule": "plateau", "patience": 7}
POINTS = {
    # The notes also mention dropout 0.5 for v1; the table's 0.3 is used.
    "v1": {"batch_norm": False, "dropout": 0.3, "optimizer": "adam", "lr": 1e-3, "batch_size": 64,
           "schedule": "none", "patience": 5},
    "v2": _V2,
    # Collapsed to 'disgust only' in the series; kept so the search reproduces that finding.
    "v3": {**_V2, "optimizer": "adamw", "imbalance": "both"},
}

PARAMS = {
    "widths": {"choice": [[32, 64], [32, 64, 128], [64, 128]]},
    "kernel_size": {"choice": [3, 5]},
    "batch_norm": {"choice": [True, False]},
    "fc_width": {"choice": [128, 256]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(crops=False),  # the flatten layer fixes the input at 48x48
}
