"""attention_cnn: conv blocks each followed by CBAM (channel attention, then spatial attention).

Every documented version (v1-v4) uses the defaults' architecture and differs only in dropout
(0.5 in v1/v2, 0.3 in v3/v4) and training settings. The reduction ratio is not documented;
16 is the CBAM paper's.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn
from timm.layers.cbam import CbamModule

from fer_search.errors import UserError
from fer_search.models.layers import conv_bn_relu, pooled_head
from fer_search.models.registry import register_model


@register_model
def attention_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64, 128),
    fc_width: int = 256,
    dropout: float = 0.5,
    reduction: int = 16,
) -> nn.Module:
    """Per entry of `widths`: [Conv3x3 BN ReLU] x 2, MaxPool2, CBAM. Then GAP -> Linear(fc_width)
    BN ReLU Dropout -> Linear(num_classes). CBAM's channel MLP has channels // reduction units
    (at least 1), its spatial attention a 7x7 conv over the channel mean and max."""
    if not 1 <= len(widths) <= 5 or reduction < 1:
        raise UserError(f"attention_cnn needs 1 to 5 widths and reduction >= 1, got widths={widths}, reduction={reduction}")
    layers: list[nn.Module] = []
    channels = in_chans
    for width in widths:
        layers += conv_bn_relu(channels, width) + conv_bn_relu(width, width)
        layers += [nn.MaxPool2d(2), CbamModule(width, rd_ratio=1 / reduction, spatial_kernel_size=7)]
        channels = width
    classifier = pooled_head(channels, fc_width, dropout, num_classes)
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
