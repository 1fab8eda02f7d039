"""simple_cnn: the series' overfit check and v1-v3 as they ran (notebook 02_simple_cnn), and TPE ranges.

Every point feeds the series' 48x48 input: one channel, pixels scaled to [-1, 1] (ToTensor, then
Normalize(0.5, 0.5)); its augmentation, if any, on the training images only.
- baseline (overfit check): README-only (no committed output). Its architecture is the README's; the rest
  is not given: Adam 1e-3, batch 32 as v1; 20 epochs (the README's run set 100 and reached 100% at 13).
- v1: run 70toflci (nb dcaa31f), the nearest committed run to the README's figures: 3x3 convs 32/64/128, FC
  512, one dropout 0.5 after FC1, Adam 1e-3, batch 32, no augmentation or schedule; early stopping with
  patience 5 on val accuracy, which fits the README's stop at epoch 12. The README's 5x5 two-conv net
  (dropout 0.3 before and after FC1, batch 64) never ran.
- v2: run uxblb7xc (nb 4471d72): v1's net with BatchNorm after each conv; flip, rotation 10, brightness and
  contrast 0.2; Adam 1e-3, no weight decay, no scheduler, batch 32, 20 epochs, patience 5. The README's lr
  5e-4, weight decay 1e-4, plateau schedule, patience 7 and dropout 0.4 never ran.
- v3: README-only: v2 with class-weighted cross-entropy AND oversampling, AdamW (lr 1e-3 and weight decay
  1e-4 from the later notebook run gt7u2tte, which used the weights without the sampler; the README gives none).
"""
from search_spaces._common import training_params
from search_spaces._reported import OVERFIT, best, last, unknown_epoch

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "simple_cnn", "input_scaling": "symmetric", "patience": 5}

_V1 = {"widths": [32, 64, 128], "kernel_size": 3, "batch_norm": False, "fc_width": 512, "dropout": 0.5,
       "dropout_before_fc": False, "bias_before_bn": True, "input_scaling": "symmetric", "optimizer": "adam",
       "lr": 1e-3, "weight_decay": 0.0, "batch_size": 32, "schedule": "none", "epochs": 30, "patience": 5}
_V2 = {**_V1, "batch_norm": True, "hflip": 0.5, "rotate": 10.0, "brightness": 0.2, "contrast": 0.2, "epochs": 20}
POINTS = {
    "v1": _V1,
    "v2": _V2,
    # Collapsed to 'disgust only' in the series; kept so the search reproduces that finding.
    "v3": {**_V2, "optimizer": "adamw", "weight_decay": 1e-4, "imbalance": "both"},
}

# Not a search point: it checks the pipeline, training and validating on the same 200 images.
REPRODUCE_ONLY = {
    "baseline": {"widths": [64], "kernel_size": 3, "batch_norm": False, "fc_width": 128, "dropout": 0.0,
                 "overfit_images": 200, "input_scaling": "symmetric", "optimizer": "adam", "lr": 1e-3,
                 "batch_size": 32, "schedule": "none", "epochs": 20, "patience": 0},
}

REPORTED = {
    "baseline": [unknown_epoch("README only", split=OVERFIT, perfect_val_epoch=13)],
    "v1": [best("run 70toflci (nb dcaa31f)", 12, val_acc=0.5824),
           last("run 70toflci (nb dcaa31f), interrupted by hand", 17, train_acc=0.8972, val_acc=0.5676),
           last("README (run i6k9h806, in no commit: its last 12-epoch piece)", 12, train_acc=0.8387,
                val_acc=0.5766)],
    "v2": [best("run uxblb7xc (nb 4471d72)", 19, val_acc=0.5911, val_macro_f1=0.47, disgust_recall=0.0),
           last("run uxblb7xc (nb 4471d72)", 20, train_acc=0.5508, val_acc=0.5789)],
    "v3": [unknown_epoch("README only (run sptprk6t)", train_acc=0.1408, val_acc=0.0176, disgust="only"),
           last("README only (run sptprk6t): early stopping", 8)],
}
NOTES = {"v3": "the notes conclude weighted loss and oversampling must not be combined"}

PARAMS = {
    "widths": {"choice": [[32, 64, 128], [32, 64], [64, 128]]},
    "kernel_size": {"choice": [3, 5]},
    "batch_norm": {"choice": [True, False]},
    "fc_width": {"choice": [512, 256, 128]},
    "dropout": {"float": [0.2, 0.6]},
    "dropout_before_fc": {"choice": [False, True]},
    **training_params(crops=False),  # the flatten layer fixes the input at 48x48
}
