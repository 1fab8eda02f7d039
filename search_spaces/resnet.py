"""resnet: resnet18/34/50 as one family (depth is a choice), the documented configurations and
TPE ranges around them. The series did not document its stem or schedule: the model's and the
trainer's defaults apply (stem "small", reduce-on-plateau).
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.5
FIXED = {"arch": "resnet18", "patience": 5}

POINTS = {
    "resnet18_config1": {"arch": "resnet18", "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "dropout": 0.3,
                         "weight_decay": 1e-4},
    "resnet18_config2": {"arch": "resnet18", "batch_size": 32, "optimizer": "sgd", "lr": 1e-2, "dropout": 0.5},
    "resnet34_config1": {"arch": "resnet34", "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "dropout": 0.3},
    "resnet34_config2": {"arch": "resnet34", "batch_size": 64, "optimizer": "adamw", "lr": 5e-4, "dropout": 0.4,
                         "weight_decay": 1e-3},
    "resnet50": {"arch": "resnet50", "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "dropout": 0.5,
                 "weight_decay": 1e-4},
}

PARAMS = {
    "arch": {"choice": ["resnet18", "resnet34", "resnet50"]},
    "stem": {"choice": ["small", "imagenet"]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
