"""vit: a Vision Transformer (timm), this project's addition: the series ran no ViT. Its "vit" run was
timm's MobileViT-XXS (search_spaces/mobilevit.py); its README's ViT-Base and a later ViT-tiny notebook
never produced output. So this family has no documented point and nothing for `reproduce`.

Its starting point is a small ViT on the 48x48 input itself (mode=native, patch 4: 12x12 tokens); TPE
also searches timm's ViT variants at 224 (mode=resized), which can start from timm's pretrained weights
(add pretrained="timm" with the weights in timm's local cache). Inputs are scaled to [-1, 1] (mean 0.5,
std 0.5), as timm's ViT weights expect.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 1.0
FIXED = {"arch": "vit", "mode": "native", "optimizer": "adamw", "schedule": "cosine", "patience": 5}

POINTS = {
    "native": {"mode": "native", "patch_size": 4, "embed_dim": 192, "depth": 6, "num_heads": 4,
               "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 1.0,
               "batch_size": 128, "hflip": 0.5},
}

_NATIVE = {"mode": "native"}
PARAMS = {
    "mode": {"choice": ["native", "resized"]},
    "variant": {"choice": ["vit_tiny_patch16_224", "vit_small_patch16_224"], "if": {"mode": "resized"}},
    "patch_size": {"choice": [4, 6, 8], "if": _NATIVE},
    "embed_dim": {"choice": [128, 192, 256], "if": _NATIVE},
    "depth": {"int": [4, 8], "if": _NATIVE},
    "num_heads": {"choice": [2, 4, 8], "if": _NATIVE},
    "mlp_ratio": {"choice": [2.0, 4.0], "if": _NATIVE},
    "drop_rate": {"float": [0.0, 0.3]},
    **training_params(optimizers=("adamw", "adam"), lr={"adamw": [5e-5, 2e-3], "adam": [5e-5, 1e-3]},
                      batch_sizes=(64, 128, 256), crops=False),  # a fixed patch grid
}
