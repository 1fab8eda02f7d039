"""deeper_cnn: the series' v1-v3 as they ran (notebook 03_deeper_cnn), and TPE ranges around them.

Every point: 48x48 input scaled to [-1, 1]; class-weighted cross-entropy (n / (7 n_c) on the training
split); Adam lr 1e-3, weight decay 1e-4; gradient norm clipped at 1.0; reduce-on-plateau of val accuracy
(factor 0.5, patience 5); early stopping with patience 10 on val accuracy.
- v1: run f1pw8dnp (nb f70940a): 7 convs ([32, 32] [64, 64] [128, 128] [256], a max-pool after each block),
  global pooling, FC 512 -> 256 with BN and dropout 0.5; batch 32, 40 epochs, no augmentation. The README
  text (4 conv blocks, "BatchNorm after every conv") fits; its figures are the last epoch's (24).
- v2: run ql1dpugq (nb 6a5298a): Dropout2d after each block (0.1/0.2/0.3/0.4), last conv 192, FC 256 -> 128,
  dropout 0.6; batch 64, 50 epochs (early stopping never fired). The README's dropout 0.7, FC 512 -> 256,
  30 epochs and patience 5 / lr-patience 3 never ran, and its figures are v1's, copied.
- v3: README-only (run mv3b6zp2, in no commit): v2 as it ran with the README's augmentation list (rotation
  15, flip, translation 10%, scale 90-110%, shear, brightness/contrast jitter, erasing 0.1): augment=1.0,
  whose shear (10 degrees) and jitter (0.2) are this project's reading of magnitudes the README does not give.
"""
from search_spaces._common import training_params
from search_spaces._reported import best, last, unknown_epoch

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "deeper_cnn", "input_scaling": "symmetric", "schedule": "plateau", "plateau_patience": 5,
         "patience": 10}

_RUN = {"bias_before_bn": True, "input_scaling": "symmetric", "imbalance": "weighted_loss", "optimizer": "adam",
        "lr": 1e-3, "weight_decay": 1e-4, "grad_clip": 1.0, "schedule": "plateau", "plateau_patience": 5,
        "plateau_factor": 0.5, "patience": 10}
_V2 = {**_RUN, "widths": [32, 64, 128, 192], "convs_per_block": [2, 2, 2, 1], "spatial_dropout": [0.1, 0.2, 0.3, 0.4],
       "fc_width": [256, 128], "dropout": 0.6, "batch_size": 64, "epochs": 50}
POINTS = {
    "v1": {**_RUN, "widths": [32, 64, 128, 256], "convs_per_block": [2, 2, 2, 1], "spatial_dropout": 0.0,
           "fc_width": [512, 256], "dropout": 0.5, "batch_size": 32, "epochs": 40},
    "v2": _V2,
    "v3": {**_V2, "augment": 1.0},
}

REPORTED = {
    "v1": [best("run f1pw8dnp (nb f70940a)", 14, val_acc=0.6179),
           last("run f1pw8dnp (nb f70940a): early stopping; the README's figures", 24, train_acc=0.9393,
                val_acc=0.5772)],
    "v2": [best("run ql1dpugq (nb 6a5298a)", 45, val_acc=0.6224),
           last("run ql1dpugq (nb 6a5298a): all 50 epochs", 50, train_acc=0.6772, val_acc=0.6189)],
    "v3": [unknown_epoch("README only (run mv3b6zp2)", train_acc=0.51, val_acc=0.55)],
}
NOTES = {"v2": "the README repeats v1's figures for v2; the run also printed macro-F1 0.59 and disgust recall 0.52 "
               "(of which epoch's model is not recorded)"}

PARAMS = {
    "widths": {"choice": [[32, 64, 128, 256], [32, 64, 128, 192], [32, 64, 128], [64, 128, 256]]},
    "convs_per_block": {"choice": [1, 2]},
    "spatial_dropout": {"float": [0.0, 0.2]},
    "fc_width": {"choice": [128, 256, 512, [512, 256], [256, 128]]},
    "dropout": {"float": [0.3, 0.7]},
    **training_params(),
}
