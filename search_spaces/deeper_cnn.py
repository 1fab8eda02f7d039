"""deeper_cnn: the documented v1-v3 (documented-versions.md) and TPE ranges around them.

v1 documents "early stopping" without a patience; v2's 5 is used for both.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "deeper_cnn", "schedule": "plateau", "plateau_patience": 3, "patience": 5}

_V2 = {"widths": [32, 64, 128, 192], "spatial_dropout": 0.1, "fc_width": 256, "dropout": 0.7,
       "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}
POINTS = {
    "v1": {"widths": [32, 64, 128, 256], "spatial_dropout": 0.0, "fc_width": 512, "dropout": 0.5,
           "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64},
    "v2": _V2,
    "v3": {**_V2, "augment": 1.0},  # the full documented augmentation list
}

PARAMS = {
    "widths": {"choice": [[32, 64, 128, 256], [32, 64, 128, 192], [32, 64, 128], [64, 128, 256]]},
    "convs_per_block": {"choice": [1, 2]},
    "spatial_dropout": {"float": [0.0, 0.2]},
    "fc_width": {"choice": [128, 256, 512]},
    "dropout": {"float": [0.3, 0.7]},
    **training_params(),
}
