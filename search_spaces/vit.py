"""vit: the documented ViT (timm, 224x224) and TPE ranges over it and a native 48x48 ViT.

The notes describe a lightweight, relatively small ViT at 224x224, the 48x48 grayscale input
replicated to 3 channels, patch 16, AdamW (weight decay 1e-4, lr 2e-5), a cosine schedule with
warm-up over 10% of the steps, batch 128, 20 epochs. Read as: the tiny variant for the point (the
lightest reading of "lightweight"; small is the search's other choice), warm-up as a share of the
steps (warmup_fraction), no early stopping (none is documented). The family's normalisation is the
documented mean 0.5 / std 0.5 on every channel (fer_search/models/vit.py), not the training set's
statistics. Pretrained weights were intended but need timm's local cache: add pretrained="timm" to
the point once they are there. TPE also searches the native small-patch ViT, which suits 48x48 input.
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 1.0
FIXED = {"arch": "vit", "mode": "native", "optimizer": "adamw", "schedule": "cosine", "patience": 5}

POINTS = {
    "vit": {"mode": "documented", "variant": "vit_tiny_patch16_224", "optimizer": "adamw", "lr": 2e-5,
            "weight_decay": 1e-4, "schedule": "cosine", "warmup_fraction": 0.1, "batch_size": 128,
            "epochs": 20, "patience": 0, "hflip": 0.5, "rotate": 15.0, "brightness": 0.2, "contrast": 0.2},
}

REPORTED = {"vit": {"train_acc": 0.5904, "val_acc": 0.5802, "test_acc": 0.5566}}

_NATIVE = {"mode": "native"}
PARAMS = {
    "mode": {"choice": ["native", "documented"]},
    "variant": {"choice": ["vit_tiny_patch16_224", "vit_small_patch16_224"], "if": {"mode": "documented"}},
    "patch_size": {"choice": [4, 6, 8], "if": _NATIVE},
    "embed_dim": {"choice": [128, 192, 256], "if": _NATIVE},
    "depth": {"int": [4, 8], "if": _NATIVE},
    "num_heads": {"choice": [2, 4, 8], "if": _NATIVE},
    "mlp_ratio": {"choice": [2.0, 4.0], "if": _NATIVE},
    "drop_rate": {"float": [0.0, 0.3]},
    **training_params(optimizers=("adamw", "adam"), lr={"adamw": [5e-5, 2e-3], "adam": [5e-5, 1e-3]},
                      batch_sizes=(64, 128, 256), crops=False),  # a fixed patch grid
}
