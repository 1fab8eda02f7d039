"""deeper_cnn: VGG-style blocks of 3x3 conv + BN + ReLU, global average pooling, BN'd FC layers.

The documentation fixes widths, BN placement, pooling and the head but not the convs per block;
two per block (VGG's choice) is the default. The notes call v1 a "7-layer CNN": one conv per block
and a two-layer FC head (4 convs + FC 512 + FC 256 + the output layer) fit that.

Documented points (search_spaces/deeper_cnn.py):
    v1  widths=(32, 64, 128, 256), convs_per_block=1, spatial_dropout=0.0, fc_width=(512, 256), dropout=0.5
    v2  widths=(32, 64, 128, 192), convs_per_block=1, spatial_dropout=0.1, fc_width=(512, 256), dropout=0.7

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
    fc_width: int | Sequence[int] = 256,
    dropout: float = 0.7,
) -> nn.Module:
    """Per entry of `widths`: convs_per_block x [Conv3x3 BN ReLU], MaxPool2, and Dropout2d after
    the first half of the blocks (the early, high-resolution ones). Then GAP -> [Linear BN ReLU
    Dropout] per hidden width in `fc_width` (one int: one hidden layer) -> Linear(num_classes)."""
    fc_layers = 1 if isinstance(fc_width, int) else len(fc_width)
    if not 1 <= len(widths) <= 5 or convs_per_block < 1 or not 1 <= fc_layers <= 3:
        raise UserError(
            f"deeper_cnn needs 1 to 5 widths, convs_per_block >= 1 and 1 to 3 FC widths, got widths={widths}, "
            f"convs_per_block={convs_per_block}, fc_width={fc_width}"
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
