"""vit: the documented ViT (timm, input resized to 224) and TPE ranges over a native 48x48 ViT.

The documented point is the series' base-size ViT at 224x224 (a GPU model; pretrained weights were
intended but need timm's local cache: add pretrained="timm" to the point once they are there).
TPE searches the native small-patch ViT, which suits 48x48 input and a CPU.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 1.0
FIXED = {"arch": "vit", "mode": "native", "optimizer": "adamw", "schedule": "cosine", "patience": 5}

POINTS = {
    "vit": {"mode": "documented", "variant": "vit_base_patch16_224", "optimizer": "adamw", "lr": 2e-5,
            "weight_decay": 1e-4, "schedule": "cosine", "warmup_epochs": 2.0, "batch_size": 128,
            "hflip": 0.5, "rotate": 15.0, "brightness": 0.2, "contrast": 0.2},
}

_NATIVE = {"mode": "native"}
PARAMS = {
    "patch_size": {"choice": [4, 6, 8], "if": _NATIVE},
    "embed_dim": {"choice": [128, 192, 256], "if": _NATIVE},
    "depth": {"int": [4, 8], "if": _NATIVE},
    "num_heads": {"choice": [2, 4, 8], "if": _NATIVE},
    "mlp_ratio": {"choice": [2.0, 4.0], "if": _NATIVE},
    "drop_rate": {"float": [0.0, 0.3]},
    **training_params(optimizers=("adamw", "adam"), lr={"adamw": [5e-5, 2e-3], "adam": [5e-5, 1e-3]},
                      batch_sizes=(64, 128, 256), crops=False),  # a fixed patch grid
}
