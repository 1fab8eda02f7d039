"""mobilevit: MobileViT-XXS (timm), the series' final model, fed 48x48 input as documented, and TPE
ranges around it. Nothing else of its training was documented: the trainer's defaults apply.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.5
FIXED = {"arch": "mobilevit_xxs", "patience": 5}

POINTS = {
    "mobilevit_xxs": {"input_size": 48},
}

PARAMS = {
    "input_size": {"choice": [48, 64, 96]},
    "drop_rate": {"float": [0.0, 0.3]},
    **training_params(),
}
