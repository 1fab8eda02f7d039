"""mobilevit: MobileViT-XXS (timm), the series' final model, fed 48x48 input as documented, and TPE
ranges around it.

The notes document the model, its 7 classes and its 48x48 input only. Its training budget is chosen:
30 epochs with early-stopping patience 5, and otherwise the trainer's defaults (Adam 1e-3, batch 64,
reduce-on-plateau, no augmentation).
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.5
FIXED = {"arch": "mobilevit_xxs", "patience": 5}

POINTS = {
    "mobilevit_xxs": {"input_size": 48, "epochs": 30, "patience": 5},
}

REPORTED = {"mobilevit_xxs": {"note": "the notes report no figures; the final notebook wrote a Kaggle submission.csv"}}

PARAMS = {
    "input_size": {"choice": [48, 64, 96]},
    "drop_rate": {"float": [0.0, 0.3]},
    **training_params(),
}
