"""simple_cnn: the documented baseline, v1 and v2 (conv blocks -> flatten -> one hidden FC layer).

Documented points:
    baseline  widths=(64,), kernel_size=3, batch_norm=False, dropout=0.0   (4,720,263 parameters)
    v1        widths=(32, 64), kernel_size=5, batch_norm=False, dropout=0.3
    v2        v1 with batch_norm=True, dropout=0.4 (the defaults)
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.registry import register_model

IMAGE_SIZE = 48


@register_model
def simple_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64),
    kernel_size: int = 5,
    fc_width: int = 128,
    batch_norm: bool = True,
    dropout: float = 0.4,
) -> nn.Module:
    """One [Conv(kernel_size, same padding) (BN) ReLU MaxPool2] per entry of `widths`, then
    Flatten -> Dropout -> Linear(fc_width) ReLU -> Dropout -> Linear(num_classes)."""
    if not widths or kernel_size % 2 == 0 or len(widths) > 5:
        raise UserError(f"simple_cnn needs 1 to 5 widths and an odd kernel_size, got widths={widths}, kernel_size={kernel_size}")
    layers: list[nn.Module] = []
    channels, size = in_chans, IMAGE_SIZE
    for width in widths:
        # BN's shift makes the conv bias redundant.
        layers.append(nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels, size = width, size // 2
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels * size * size, fc_width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(fc_width, num_classes),
    )
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
