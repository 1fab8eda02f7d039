"""resnet18/34/50: torchvision's ResNet with a stem for 48x48 input and dropout before the classifier.

stem="small" (default): Conv3x3 stride 1, no max-pool, so layer1 sees the full 48x48 (final
feature map 6x6). stem="imagenet": the original Conv7x7 stride 2 + max-pool (final map 2x2;
4x cheaper, and the only stem that timm's pretrained conv1 fits).

Options of the strong small-image ResNet recipes: zero_init_residual (each residual branch's last
BatchNorm starts at 0, so every block starts as the identity), drop_path (stochastic depth, rising
linearly to this rate over the blocks; torchvision's StochasticDepth) and preact (pre-activation
blocks, He et al. 2016, built from timm's ResNetV2 with BatchNorm).

imagenet_input=True is the input of the series' ResNets (notebook 05_resnet, coded there and trained from
random init): the 48x48 image resized to 224, copied to three channels and normalised with ImageNet's
per-channel mean and std, into the 7x7/2 stem with max-pool (stem="imagenet"); its parameter counts are
the notebook's (resnet18 11,180,103; resnet34 21,288,263; resnet50 23,522,375). The model takes 0..1
pixels then, and declares so (the trainer's input_scaling=auto gives it that).
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch.nn as nn
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models.resnetv2 import ResNetV2
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.ops import StochasticDepth

from fer_search.errors import UserError
from fer_search.models.layers import InputAdapter
from fer_search.models.pretrained import create_timm_model, load_adapted_state_dict
from fer_search.models.registry import register_model

STEMS = ("small", "imagenet")
SERIES_INPUT_SIZE = 224
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _input_scaling(hparams: dict) -> tuple[float, float] | None:
    """imagenet_input normalises inside the model, per channel: it takes 0..1 pixels."""
    return (0.0, 1.0) if hparams.get("imagenet_input") else None


def _build_resnet(
    name: str,
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    num_classes: int,
    in_chans: int,
    pretrained: bool,
    stem: str,
    dropout: float,
    zero_init_residual: bool,
    drop_path: float,
    preact: bool,
    imagenet_input: bool,
) -> nn.Module:
    if imagenet_input:
        if stem != "imagenet" or preact or in_chans != 1:
            raise UserError(f"{name}: imagenet_input (the series' 224-pixel RGB input) goes with stem='imagenet', "
                            f"standard blocks and grayscale input, got stem={stem!r}, preact={preact}, in_chans={in_chans}")
        net = _build_resnet(name, block, layers, num_classes, 3, pretrained, stem, dropout, zero_init_residual,
                            drop_path, preact, imagenet_input=False)
        return InputAdapter(net, SERIES_INPUT_SIZE, repeat_to_chans=3, channel_stats=IMAGENET_STATS)
    if stem not in STEMS:
        raise UserError(f"{name}: stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if not 0 <= drop_path < 1:
        raise UserError(f"{name}: drop_path must be in [0, 1), got {drop_path}")
    if preact:
        if pretrained:
            raise UserError(f"{name}: pretrained weights fit the standard blocks, not preact=True")
        return _preact_resnet(block, layers, num_classes, in_chans, stem, dropout, zero_init_residual, drop_path)
    model = ResNet(block, layers, num_classes=num_classes, zero_init_residual=zero_init_residual)
    if stem == "small":
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as ResNet inits its convs
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    if drop_path:
        blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
        for i, b in enumerate(blocks):
            # The branch ends in its last BatchNorm: dropping its output drops the branch (stochastic depth).
            last = "bn3" if isinstance(b, Bottleneck) else "bn2"
            rate = drop_path * i / max(1, len(blocks) - 1)
            setattr(b, last, nn.Sequential(getattr(b, last), StochasticDepth(rate, "row")))
    if pretrained:
        # timm's ResNets name their parameters as torchvision does, so their weights load directly.
        timm_weights = create_timm_model(name, pretrained=True, in_chans=in_chans).state_dict()
        load_adapted_state_dict(model, timm_weights, source=f"timm {name}")
    return model


def _preact_resnet(block, layers: list[int], num_classes: int, in_chans: int, stem: str, dropout: float,
                   zero_init_residual: bool, drop_path: float) -> nn.Module:
    basic = block is BasicBlock
    model = ResNetV2(layers, channels=(64, 128, 256, 512) if basic else (256, 512, 1024, 2048),
                     num_classes=num_classes, in_chans=in_chans, preact=True, basic=basic,
                     bottle_ratio=1.0 if basic else 0.25,  # basic blocks keep the full width inside
                     norm_layer=BatchNormAct2d, conv_layer=partial(create_conv2d, bias=False), drop_rate=dropout,
                     drop_path_rate=drop_path, zero_init_last=zero_init_residual)
    if stem == "small":  # as the standard blocks' small stem: full 48x48 into the first stage
        model.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)))
    return model


@register_model(normalization=_input_scaling)
def resnet18(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small",
             dropout: float = 0.3, zero_init_residual: bool = False, drop_path: float = 0.0,
             preact: bool = False, imagenet_input: bool = False) -> nn.Module:
    return _build_resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, in_chans, pretrained, stem, dropout,
                         zero_init_residual, drop_path, preact, imagenet_input)


@register_model(normalization=_input_scaling)
def resnet34(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small",
             dropout: float = 0.3, zero_init_residual: bool = False, drop_path: float = 0.0,
             preact: bool = False, imagenet_input: bool = False) -> nn.Module:
    return _build_resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, in_chans, pretrained, stem, dropout,
                         zero_init_residual, drop_path, preact, imagenet_input)


@register_model(normalization=_input_scaling)
def resnet50(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small",
             dropout: float = 0.5, zero_init_residual: bool = False, drop_path: float = 0.0,
             preact: bool = False, imagenet_input: bool = False) -> nn.Module:
    return _build_resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, in_chans, pretrained, stem, dropout,
                         zero_init_residual, drop_path, preact, imagenet_input)
