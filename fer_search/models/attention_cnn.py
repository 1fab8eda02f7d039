"""attention_cnn: conv blocks, each followed by an attention module.

attention="channel" (the default) is what the series' notebook built (commit c142f89) under the name
CBAM: two channel-attention gates in a row (each an MLP with channels // reduction hidden units, without
biases, on the average- and max-pooled channel vectors; reduction 8), and no spatial attention map.
With bias_before_bn=True (the notebook's biases) it has 333,415 parameters. attention="cbam" is the real
CBAM (Woo et al. 2018, timm's CbamModule): one channel gate, then a 7x7 spatial attention map; this
project's addition to the search.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn as nn
from timm.layers.cbam import CbamModule, ChannelAttn

from fer_search.errors import UserError
from fer_search.models.layers import conv_bn_relu, pooled_head
from fer_search.models.registry import register_model

ATTENTIONS = ("channel", "cbam")


@register_model
def attention_cnn(
    num_classes: int = 7,
    in_chans: int = 1,
    *,
    widths: Sequence[int] = (32, 64, 128),
    fc_width: int = 256,
    dropout: float = 0.5,
    attention: str = "channel",
    reduction: int = 8,
    bias_before_bn: bool = False,
) -> nn.Module:
    """Per entry of `widths`: [Conv3x3 BN ReLU] x 2, MaxPool2, then the attention module. Then GAP ->
    Linear(fc_width) BN ReLU Dropout -> Linear(num_classes). The gates' MLPs have channels // reduction
    units (at least 1). bias_before_bn: the convs and the hidden FC layer keep a bias before their BN."""
    if not 1 <= len(widths) <= 5 or reduction < 1 or attention not in ATTENTIONS:
        raise UserError(f"attention_cnn needs 1 to 5 widths, reduction >= 1 and attention one of "
                        f"{', '.join(ATTENTIONS)}, got widths={widths}, reduction={reduction}, attention={attention!r}")
    layers: list[nn.Module] = []
    channels = in_chans
    for width in widths:
        layers += conv_bn_relu(channels, width, bias_before_bn) + conv_bn_relu(width, width, bias_before_bn)
        layers.append(nn.MaxPool2d(2))
        if attention == "channel":
            layers += [ChannelAttn(width, rd_ratio=1 / reduction), ChannelAttn(width, rd_ratio=1 / reduction)]
        else:
            layers.append(CbamModule(width, rd_ratio=1 / reduction, spatial_kernel_size=7))
        channels = width
    classifier = pooled_head(channels, fc_width, dropout, num_classes, bias=bias_before_bn)
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
