"""attention_cnn: the series' v1 as it ran (notebook 04_attention_cnn), its README-only v2-v4, and TPE ranges.

Every point: the notebook's network (commit c142f89): three blocks of two 3x3 convs at 32/64/128, each
followed by what the notebook called CBAM: two channel-attention gates with reduction 8 and no spatial map
(attention="channel"); 48x48 input scaled to [-1, 1]; flip and rotation 10 on the training images; plain
cross-entropy; Adam with (coupled) weight decay 1e-4.
- v1: run 4a37ougz: lr 5e-4, batch 64, 40 epochs, dropout 0.5, no schedule, no early stopping. The README's
  AdamW lr 1e-3, plateau schedule, 50 epochs and early stopping are the unrun first draft (14ffba9). The
  notebook's loop took two optimizer steps per batch (an fp32 step, then an AMP step on the same batch),
  a defect: the intent, one step per batch, is what runs here (whether the defect moves the figures is not
  measured, so it is not offered as an option).
- v2-v4: README-only (their code is in no commit), on v1 as it ran. v2: batch 128, 20 epochs (the W&B
  chart agrees). v3: lr 3e-4, weight decay 5e-4, dropout 0.3, label smoothing 0.1, torch's cosine with
  T_max 10 (down over 10 epochs, up over the next), batch 64, 20 epochs (the W&B chart's; the README says
  50). v4: batch 64, dropout 0.3, 30 epochs (its log's "of 30"; the README says 50), early stopping with
  patience 7 on val accuracy; its "lower lr", "weight decay raised" and label smoothing are read as 1e-4,
  1e-3 and 0.1 (below / above / as v3's).
"""
from search_spaces._common import training_params
from search_spaces._reported import best, last, unknown_epoch

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "attention_cnn", "attention": "channel", "reduction": 8, "input_scaling": "symmetric",
         "patience": 0}

_V1 = {"widths": [32, 64, 128], "fc_width": 256, "attention": "channel", "reduction": 8, "bias_before_bn": True,
       "dropout": 0.5, "input_scaling": "symmetric", "hflip": 0.5, "rotate": 10.0, "optimizer": "adam", "lr": 5e-4,
       "weight_decay": 1e-4, "schedule": "none", "batch_size": 64, "epochs": 40, "patience": 0}
POINTS = {
    "v1": _V1,
    "v2": {**_V1, "batch_size": 128, "epochs": 20},  # the series' pick for its final ensemble
    "v3": {**_V1, "lr": 3e-4, "weight_decay": 5e-4, "dropout": 0.3, "label_smoothing": 0.1, "schedule": "cosine",
           "cosine_t_max": 10, "epochs": 20},
    "v4": {**_V1, "dropout": 0.3, "lr": 1e-4, "weight_decay": 1e-3, "label_smoothing": 0.1, "epochs": 30,
           "patience": 7},
}

_V1_RUN = "run 4a37ougz (nb c142f89)"
REPORTED = {
    "v1": [best(_V1_RUN, 37, val_acc=0.6482),
           last(_V1_RUN + ": all 40 epochs", 40, train_acc=0.765, val_acc=0.6362)],
    "v2": [last("README only (run 30aso492; the W&B chart's last epoch)", 20, train_acc=0.68, val_acc=0.63)],
    "v3": [unknown_epoch("README only (run j96barvg)", train_acc=0.71, val_acc=0.62)],
    "v4": [last("README only: early stopping", 19, train_acc=0.635, val_acc=0.6198, disgust="never")],
}
NOTES = {"v1": "train acc is the notebook's running value over the first of its two steps per batch"}

PARAMS = {
    "widths": {"choice": [[32, 64, 128], [64, 128, 256]]},
    "fc_width": {"choice": [128, 256]},
    "attention": {"choice": ["channel", "cbam"]},
    "reduction": {"choice": [8, 16]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
