"""resnet: resnet18/34/50 as one family (depth is a choice), the documented configurations and
TPE ranges around them.

The notes give each configuration's batch, optimiser, learning rate, dropout and weight decay only.
The rest is chosen and stays the same for all five, so they compare as the notes compare them:
30 epochs with early-stopping patience 5 on reduce-on-plateau (the trainer's schedule), no
augmentation, the model's "small" stem. Config 2's SGD momentum is not documented: 0.9, torch's
and torchvision's usual, without Nesterov.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.5
FIXED = {"arch": "resnet18", "patience": 5}

_BUDGET = {"epochs": 30, "patience": 5}
POINTS = {
    "resnet18_config1": {"arch": "resnet18", "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "dropout": 0.3,
                         "weight_decay": 1e-4, **_BUDGET},
    "resnet18_config2": {"arch": "resnet18", "batch_size": 32, "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9,
                         "dropout": 0.5, **_BUDGET},
    "resnet34_config1": {"arch": "resnet34", "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "dropout": 0.3,
                         **_BUDGET},
    "resnet34_config2": {"arch": "resnet34", "batch_size": 64, "optimizer": "adamw", "lr": 5e-4, "dropout": 0.4,
                         "weight_decay": 1e-3, **_BUDGET},
    "resnet50": {"arch": "resnet50", "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "dropout": 0.5,
                 "weight_decay": 1e-4, **_BUDGET},
}

# macro-F1 is reported next to the test accuracy: read as test macro-F1.
REPORTED = {
    "resnet18_config1": {"test_acc": 0.6531, "test_macro_f1": 0.604, "train_acc": 0.7343, "val_acc": 0.6473,
                         "note": "the best single model of the series"},
    "resnet18_config2": {"test_acc": 0.6487, "test_macro_f1": 0.606, "train_acc": 0.7558},
    "resnet34_config1": {"test_acc": 0.6390, "test_macro_f1": 0.603, "train_acc": 0.7140},
    "resnet34_config2": {"test_acc": 0.6412, "test_macro_f1": 0.608, "train_acc": 0.7215},
    "resnet50": {"test_acc": 0.6285, "test_macro_f1": 0.598, "val_acc": 0.5973, "train_minutes": 85},
}

PARAMS = {
    "arch": {"choice": ["resnet18", "resnet34", "resnet50"]},
    "stem": {"choice": ["small", "imagenet"]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
