"""deeper_cnn: the documented v1-v3 (documented-versions.md) and TPE ranges around them.

Each point runs its documented budget. Where the notes are silent or ambiguous:
- architecture: the notes call v1 a "7-layer CNN" and give v2 "FC 512->256": one conv per block and a
  two-layer FC head (4 convs + FC 512 + FC 256 + the output layer) fit that; two convs per block would
  make 11 layers. v2 keeps that head.
- v1 documents "early stopping" without a patience, and v2's (5, LR-plateau 3) is called "more
  aggressive": v1 gets 10 and plateau patience 5. v1's schedule is read as v2's reduce-on-plateau.
- batch size is not given: 64, the series' usual.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "deeper_cnn", "convs_per_block": 1, "fc_width": [512, 256], "schedule": "plateau",
         "plateau_patience": 3, "patience": 5}

_V2 = {"widths": [32, 64, 128, 192], "spatial_dropout": 0.1, "dropout": 0.7, "optimizer": "adam", "lr": 1e-3,
       "weight_decay": 1e-4, "batch_size": 64, "epochs": 30, "patience": 5, "plateau_patience": 3}
POINTS = {
    "v1": {**_V2, "widths": [32, 64, 128, 256], "spatial_dropout": 0.0, "dropout": 0.5, "epochs": 40, "patience": 10,
           "plateau_patience": 5},
    "v2": _V2,
    "v3": {**_V2, "augment": 1.0},  # the full documented augmentation list
}

REPORTED = {
    "v1": {"stopped_epoch": 24, "train_acc": 0.9393, "val_acc": 0.5772},
    "v2": {"stopped_epoch": 24, "train_acc": 0.9393, "val_acc": 0.5772,
           "note": "the notes repeat v1's figures for v2 (likely copied)"},
    "v3": {"train_acc": 0.51, "val_acc": 0.55},
}

PARAMS = {
    "widths": {"choice": [[32, 64, 128, 256], [32, 64, 128, 192], [32, 64, 128], [64, 128, 256]]},
    "convs_per_block": {"choice": [1, 2]},
    "spatial_dropout": {"float": [0.0, 0.2]},
    "fc_width": {"choice": [128, 256, 512, [512, 256]]},
    "dropout": {"float": [0.3, 0.7]},
    **training_params(),
}
