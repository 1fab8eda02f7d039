"""deeper_cnn: VGG-style blocks of 3x3 conv + BN + ReLU, global average pooling, BN'd FC layers.

The series' layouts (search_spaces/deeper_cnn.py; parameter counts as the notebooks printed them):
    v1 (run f1pw8dnp)  widths=(32, 64, 128, 256), convs_per_block=(2, 2, 2, 1), spatial_dropout=0.0,
                       fc_width=(512, 256), dropout=0.5, bias_before_bn=True: the 7 convs, 849,255
    v2 (run ql1dpugq)  widths=(32, 64, 128, 192), convs_per_block=(2, 2, 2, 1),
                       spatial_dropout=(0.1, 0.2, 0.3, 0.4), fc_width=(256, 128), dropout=0.6,
                       bias_before_bn=True: 593,063

For a CPU budget, one conv per block and narrower widths cut the cost ~8x (convs_per_block=1,
widths=(16, 32, 64, 128) or (24, 48, 96, 192), spatial_dropout=0.0); channels_last helps on CPU too.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.layers import conv_stages, pooled_head
from fer_search.models.registry import register_model


@register_model
def deeper_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64, 128, 192),
    convs_per_block: int | Sequence[int] = 2,
    spatial_dropout: float | Sequence[float] = 0.1,
    fc_width: int | Sequence[int] = 256,
    dropout: float = 0.7,
    bias_before_bn: bool = False,
) -> nn.Module:
    """Per entry of `widths`: convs_per_block x [Conv3x3 BN ReLU] (one number for every block, or one per
    block), MaxPool2, then Dropout2d: `spatial_dropout` one rate per block (0 = none), or one number for
    the first half of the blocks (the early, high-resolution ones). Then GAP -> [Linear BN ReLU Dropout]
    per hidden width in `fc_width` (one int: one hidden layer) -> Linear(num_classes). bias_before_bn:
    the convs and hidden FC layers keep a bias before their BN, as the notebooks' did."""
    convs = [convs_per_block] * len(widths) if isinstance(convs_per_block, int) else list(convs_per_block)
    if isinstance(spatial_dropout, (int, float)):  # (None: no layer; model files keep their layer numbers)
        rates = [float(spatial_dropout) if block < len(widths) // 2 else None for block in range(len(widths))]
    else:
        rates = [float(rate) for rate in spatial_dropout]
    fc_layers = 1 if isinstance(fc_width, int) else len(fc_width)
    if (not 1 <= len(widths) <= 5 or len(convs) != len(widths) or min(convs) < 1 or len(rates) != len(widths)
            or not 1 <= fc_layers <= 3):
        raise UserError(
            f"deeper_cnn needs 1 to 5 widths, convs_per_block >= 1 (one number, or one per width), spatial_dropout "
            f"as one number or one per width, and 1 to 3 FC widths, got widths={widths}, "
            f"convs_per_block={convs_per_block}, spatial_dropout={spatial_dropout}, fc_width={fc_width}"
        )
    features, channels = conv_stages(in_chans, widths, convs, bias=bias_before_bn, dropout_rates=rates)
    classifier = pooled_head(channels, fc_width, dropout, num_classes, bias=bias_before_bn)
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))
