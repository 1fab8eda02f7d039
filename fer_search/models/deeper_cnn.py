"""deeper_cnn: VGG-style blocks of 3x3 conv + BN + ReLU, global average pooling, a BN'd FC layer.

The documentation fixes widths, BN placement, pooling and the head but not the convs per block;
two per block (VGG's choice) is the default.

Documented points:
    v1  widths=(32, 64, 128, 256), spatial_dropout=0.0, fc_width=512, dropout=0.5
    v2  widths=(32, 64, 128, 192), spatial_dropout=0.1, fc_width=256, dropout=0.7 (the defaults)

For a CPU budget, one conv per block and narrower widths cut the cost ~8x (convs_per_block=1,
widths=(16, 32, 64, 128) or (24, 48, 96, 192), spatial_dropout=0.0); channels_last helps on CPU too.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.layers import conv_bn_relu, pooled_head
from fer_search.models.registry import register_model


@register_model
def deeper_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64, 128, 192),
    convs_per_block: int = 2,
    spatial_dropout: float = 0.1,
    fc_width: int = 256,
    dropout: float = 0.7,
) -> nn.Module:
    """Per entry of `widths`: convs_per_block x [Conv3x3 BN ReLU], MaxPool2, and Dropout2d after
    the first half of the blocks (the early, high-resolution ones). Then GAP -> Linear(fc_width)
    BN ReLU Dropout -> Linear(num_classes)."""
    if not 1 <= len(widths) <= 5 or convs_per_block < 1:
        raise UserError(
            f"deeper_cnn needs 1 to 5 widths and convs_per_block >= 1, got widths={widths}, convs_per_block={convs_per_block}"
        )
    layers: list[nn.Module] = []
    channels = in_chans
    for block, width in enumerate(widths):
        for _ in range(convs_per_block):
            layers += conv_bn_relu(channels, width)
            channels = width
        layers.append(nn.MaxPool2d(2))
        if block < len(widths) // 2:
            layers.append(nn.Dropout2d(spatial_dropout))
    classifier = pooled_head(channels, fc_width, dropout, num_classes)
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
