"""simple_cnn: the documented baseline and v1-v3 (documented-versions.md), and TPE ranges around them.

Each point runs its documented budget: epochs, early-stopping patience, schedule, batch, optimiser.
Where the notes are silent or ambiguous:
- v1: the notes also mention dropout 0.5; the table's 0.3 is used.
- v2: "data augmentation" names no transforms: the documented list (deeper_cnn v3's) at strength 1;
  the plateau schedule's patience is not given: the trainer's 3.
- baseline (the overfit check; `reproduce` only, it trains on 200 images): optimiser, learning rate,
  batch and epochs are not given: v1's Adam 1e-3, batch 32 (6 steps an epoch: the trainer drops the
  ragged last 8 images, different ones each epoch), 20 epochs, room to see "100% by epoch 13".
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "simple_cnn", "widths": [32, 64], "kernel_size": 5, "fc_width": 128, "patience": 5}

_V2 = {"batch_norm": True, "dropout": 0.4, "augment": 1.0, "optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-4,
       "batch_size": 64, "schedule": "plateau", "epochs": 20, "patience": 7}
POINTS = {
    "v1": {"batch_norm": False, "dropout": 0.3, "optimizer": "adam", "lr": 1e-3, "batch_size": 64,
           "schedule": "none", "epochs": 30, "patience": 5},
    "v2": _V2,
    # Collapsed to 'disgust only' in the series; kept so the search reproduces that finding.
    "v3": {**_V2, "optimizer": "adamw", "imbalance": "both"},
}

# Documented, but not a search point: it checks the pipeline, training and validating on the same 200 images.
REPRODUCE_ONLY = {
    "baseline": {"widths": [64], "kernel_size": 3, "batch_norm": False, "dropout": 0.0, "overfit_images": 200,
                 "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "schedule": "none", "epochs": 20, "patience": 0},
}

# What the notes reported (fractions; `disgust`: "never" or "only" predicted).
REPORTED = {
    "baseline": {"perfect_val_epoch": 13},
    "v1": {"stopped_epoch": 12, "train_acc": 0.8387, "val_acc": 0.5766},
    "v2": {"train_acc": 0.5508, "val_acc": 0.5911, "disgust": "never"},
    "v3": {"train_acc": 0.1408, "val_acc": 0.0176, "disgust": "only",
           "note": "the notes conclude weighted loss and oversampling must not be combined"},
}

PARAMS = {
    "widths": {"choice": [[32, 64], [32, 64, 128], [64, 128]]},
    "kernel_size": {"choice": [3, 5]},
    "batch_norm": {"choice": [True, False]},
    "fc_width": {"choice": [128, 256]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(crops=False),  # the flatten layer fixes the input at 48x48
}
