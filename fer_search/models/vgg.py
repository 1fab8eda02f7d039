"""vgg: the VGG-style network of the strongest from-scratch FER2013 results (Khaireddin & Chen 2021,
73.28% single-network test accuracy; Pramerdorfer & Kampel 2016): stages of 3x3 Conv-BN-ReLU at
64-128-256-512 channels, a max-pool ending each stage, and a wide two-layer FC head with dropout.

The head starts with global average pooling rather than a flatten, so the same network trains on
random crops (40 or 44 pixels) and tests on ten crops of that side. Narrower widths (`widths`
scales every stage) make the CPU-sized members of a search.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.layers import conv_stages
from fer_search.models.registry import register_model


@register_model
def vgg(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (64, 128, 256, 512),
    convs_per_stage: int = 2,
    fc_width: int = 1024,
    fc_layers: int = 2,
    dropout: float = 0.5,
) -> nn.Module:
    """Per entry of `widths`: convs_per_stage x [Conv3x3 BN ReLU], MaxPool2. Then GAP ->
    fc_layers x [Linear(fc_width) ReLU Dropout] -> Linear(num_classes)."""
    if not 1 <= len(widths) <= 5 or convs_per_stage < 1 or fc_layers < 0:
        raise UserError(f"vgg needs 1 to 5 widths, convs_per_stage >= 1 and fc_layers >= 0, got widths={widths}, "
                        f"convs_per_stage={convs_per_stage}, fc_layers={fc_layers}")
    features, channels = conv_stages(in_chans, widths, [convs_per_stage] * len(widths))
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for _ in range(fc_layers):
        head += [nn.Linear(channels, fc_width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        channels = fc_width
    head.append(nn.Linear(channels, num_classes))
    return nn.Sequential(OrderedDict(features=features, classifier=nn.Sequential(*head)))
