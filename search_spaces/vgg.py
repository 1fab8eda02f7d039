"""vgg: no documented version (the series stopped at deeper_cnn's four blocks); its point is the
strongest from-scratch FER2013 recipe, Khaireddin & Chen (2021, 73.28% test): VGG 64-128-256-512
with two convs per stage, SGD with Nesterov momentum 0.9, lr 0.01, weight decay 5e-4, reduce on
plateau, batch 64; random crops with ten-crop testing as in the common PyTorch VGG19 FER recipe. Like
the documented points it keeps its own budget, 50 epochs (the paper trained 300; --smoke cuts it).
"""
from search_spaces._common import training_params

GPUS_PER_TRIAL = 0.25
FIXED = {"arch": "vgg", "patience": 10}

POINTS = {
    "khaireddin2021": {"widths": [64, 128, 256, 512], "convs_per_stage": 2, "fc_width": 1024, "dropout": 0.5,
                       "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                       "schedule": "plateau", "plateau_patience": 5, "batch_size": 64, "epochs": 50,
                       "crop": 44, "hflip": 0.5, "rotate": 10.0, "erasing": 0.5, "tta": "crops"},
}

PARAMS = {
    "widths": {"choice": [[64, 128, 256, 512], [32, 64, 128, 256], [48, 96, 192, 384]]},
    "convs_per_stage": {"choice": [2, 1, 3]},
    "fc_width": {"choice": [1024, 512, 2048]},
    "fc_layers": {"choice": [2, 1]},
    "dropout": {"float": [0.2, 0.6]},
    **training_params(),
}
