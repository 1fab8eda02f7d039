"""resnet: resnet18/34/50 as one family (depth is a choice): the series' runs (notebook 05_resnet) and TPE ranges.

Every point is the notebook's setup: its own ResNet (torchvision's layout: 7x7/2 stem, max-pool, dropout
before the classifier) from random init, on the 48x48 image resized to 224 and copied to three channels with
ImageNet normalisation (imagenet_input); flip, rotation 10, brightness and contrast 0.2 on the training
images; plain cross-entropy; weight decay 1e-4 unless given; StepLR (10 epochs, x0.1); 20 epochs; early
stopping with patience 10 on val accuracy (it never fired); SGD (config 2) with momentum 0.9. The README gives
batch, optimiser, lr, dropout and weight decay only, and its "test" figures are the best epoch's val accuracy
on the split that chose that epoch.
- resnet34_config2: its README figures (64.12%, 0.608, 72.15%) appear in no output; the run printed others.
- resnet50: README-only figures (run trgw8f4w, in no commit); the committed run h7t21j0o with the same
  settings stopped in epoch 17.
"""
from search_spaces._common import training_params
from search_spaces._reported import SPLIT_B, best, last, unknown_epoch

GPUS_PER_TRIAL = 0.5
FIXED = {"arch": "resnet18", "patience": 5}

_RUN = {"stem": "imagenet", "imagenet_input": True, "hflip": 0.5, "rotate": 10.0, "brightness": 0.2, "contrast": 0.2,
        "schedule": "step", "step_size": 10, "step_gamma": 0.1, "epochs": 20, "patience": 10, "weight_decay": 1e-4}
POINTS = {
    "resnet18_config1": {**_RUN, "arch": "resnet18", "batch_size": 64, "optimizer": "adam", "lr": 1e-3,
                         "dropout": 0.3},
    "resnet18_config2": {**_RUN, "arch": "resnet18", "batch_size": 32, "optimizer": "sgd", "lr": 1e-2,
                         "momentum": 0.9, "dropout": 0.5},
    "resnet34_config1": {**_RUN, "arch": "resnet34", "batch_size": 64, "optimizer": "adam", "lr": 1e-3,
                         "dropout": 0.3},
    "resnet34_config2": {**_RUN, "arch": "resnet34", "batch_size": 64, "optimizer": "adamw", "lr": 5e-4,
                         "weight_decay": 1e-3, "dropout": 0.4},
    "resnet50": {**_RUN, "arch": "resnet50", "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "dropout": 0.5},
}


def _run(name: str, best_epoch: int, best_val: float, f1: float, last_val: float, train: float):
    """The notebook's figures: "Test" = best val and its macro-F1, "Validation" = the last epoch's val."""
    return [best(f"run {name} (nb cd98ff8)", best_epoch, SPLIT_B, val_acc=best_val, val_macro_f1=f1),
            last(f"run {name} (nb cd98ff8)", 20, SPLIT_B, train_acc=train, val_acc=last_val)]


REPORTED = {
    "resnet18_config1": _run("6fevr4sx", 18, 0.6531, 0.6036, 0.6473, 0.7343),
    "resnet18_config2": _run("62mn0jg8", 20, 0.6487, 0.6056, 0.6487, 0.7558),
    "resnet34_config1": _run("147ezqkp", 20, 0.6390, 0.6028, 0.6390, 0.7140),
    "resnet34_config2": _run("50f0plf2", 18, 0.6506, 0.5950, 0.6496, 0.7242),
    "resnet50": [best("README only (run trgw8f4w)", None, SPLIT_B, val_acc=0.6285, val_macro_f1=0.598),
                 unknown_epoch("README only (run trgw8f4w)", None, SPLIT_B, val_acc=0.5973),
                 best("run h7t21j0o (interrupted in epoch 17)", 16, SPLIT_B, val_acc=0.5923)],
}
NOTES = {"resnet18_config1": "the series' best single model; its 65.31% is a best-epoch validation score, "
                             "not a test score",
         "resnet50": "the README says it took 1 h 25 min to train"}

PARAMS = {
    "arch": {"choice": ["resnet18", "resnet34", "resnet50"]},
    "stem": {"choice": ["small", "imagenet"]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
