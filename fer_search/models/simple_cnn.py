"""simple_cnn: conv blocks -> flatten -> one hidden FC layer, the series' first network.

The defaults are the network its notebook ran for v2 (commit 4471d72, run uxblb7xc): three 3x3 convs at
32/64/128, each with BatchNorm, ReLU and a 2x2 max-pool, then FC 4608 -> 512, ReLU, one dropout 0.5 after
that FC layer, FC 512 -> 7. The series' own layouts (search_spaces/simple_cnn.py; parameter counts as
the notebooks printed them, bias_before_bn=True):
    baseline (overfit check)  widths=(64,), batch_norm=False, fc_width=128, dropout=0.0     4,720,263
    v1 (run 70toflci)         widths=(32, 64, 128), batch_norm=False, fc_width=512, dropout=0.5  2,456,071
    v2 (run uxblb7xc)         v1 with batch_norm=True                                         2,456,519
The README's 5x5 two-conv net with dropout before and after FC1 (widths=(32, 64), kernel_size=5,
fc_width=128, dropout_before_fc=True) never ran; it stays reachable for the search.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from fer_search.data.types import IMAGE_SIZE
from fer_search.errors import UserError
from fer_search.models.registry import register_model


@register_model
def simple_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64, 128),
    kernel_size: int = 3,
    fc_width: int = 512,
    batch_norm: bool = True,
    dropout: float = 0.5,
    dropout_before_fc: bool = False,
    bias_before_bn: bool = False,
) -> nn.Module:
    """One [Conv(kernel_size, same padding) (BN) ReLU MaxPool2] per entry of `widths`, then
    Flatten -> (Dropout, with dropout_before_fc) -> Linear(fc_width) ReLU -> Dropout -> Linear(num_classes).
    A conv has a bias without BN; with BN only when bias_before_bn (redundant with BN's shift, but the
    series' notebooks kept it)."""
    if not widths or kernel_size % 2 == 0 or len(widths) > 5:
        raise UserError(f"simple_cnn needs 1 to 5 widths and an odd kernel_size, got widths={widths}, kernel_size={kernel_size}")
    layers: list[nn.Module] = []
    channels, size = in_chans, IMAGE_SIZE
    for width in widths:
        layers.append(nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2,
                                bias=bias_before_bn or not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels, size = width, size // 2
    head: list[nn.Module] = [nn.Flatten()] + ([nn.Dropout(dropout)] if dropout_before_fc else [])
    head += [nn.Linear(channels * size * size, fc_width), nn.ReLU(inplace=True), nn.Dropout(dropout),
             nn.Linear(fc_width, num_classes)]
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=nn.Sequential(*head)))
