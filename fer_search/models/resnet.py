"""resnet18/34/50: torchvision's ResNet with a stem for 48x48 input and dropout before the classifier.

stem="small" (default): Conv3x3 stride 1, no max-pool, so layer1 sees the full 48x48 (final
feature map 6x6). stem="imagenet": the original Conv7x7 stride 2 + max-pool (final map 2x2;
4x cheaper, and the only stem that timm's pretrained conv1 fits).

Documented points: resnet18/resnet34 dropout 0.3 (config 1) or 0.5 / 0.4 (config 2);
resnet50 dropout 0.5. Which stem the series used is not documented.
"""
from __future__ import annotations

import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from fer_search.errors import UserError
from fer_search.models.pretrained import create_timm_model, load_adapted_state_dict
from fer_search.models.registry import register_model

STEMS = ("small", "imagenet")


def _build_resnet(
    name: str,
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    num_classes: int,
    in_chans: int,
    pretrained: bool,
    stem: str,
    dropout: float,
) -> ResNet:
    if stem not in STEMS:
        raise UserError(f"{name}: stem must be one of {', '.join(STEMS)}, got {stem!r}")
    model = ResNet(block, layers, num_classes=num_classes)
    if stem == "small":
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as ResNet inits its convs
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    if pretrained:
        # timm's ResNets name their parameters as torchvision does, so their weights load directly.
        timm_weights = create_timm_model(name, pretrained=True, in_chans=in_chans).state_dict()
        load_adapted_state_dict(model, timm_weights, source=f"timm {name}")
    return model


@register_model
def resnet18(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small", dropout: float = 0.3) -> nn.Module:
    return _build_resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, in_chans, pretrained, stem, dropout)


@register_model
def resnet34(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small", dropout: float = 0.3) -> nn.Module:
    return _build_resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, in_chans, pretrained, stem, dropout)


@register_model
def resnet50(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, *, stem: str = "small", dropout: float = 0.5) -> nn.Module:
    return _build_resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, in_chans, pretrained, stem, dropout)
