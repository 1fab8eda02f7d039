"""mobilevit_xxs: timm's MobileViT-XXS, the series' final model, on grayscale FER input.

The input is fed at `input_size`: 48 by default, as the series did (the images' own size, no
resizing). MobileViT halves the resolution five times and unfolds 2x2 patches, so timm interpolates
feature maps at 48; 64 or 96 (resized inside `forward`) avoid that and are in the search.
"""
from __future__ import annotations

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.layers import InputAdapter
from fer_search.models.pretrained import create_timm_model
from fer_search.models.registry import register_model


@register_model
def mobilevit_xxs(
    num_classes: int = 7,
    in_chans: int = 1,
    pretrained: bool = False,
    *,
    input_size: int = 48,
    drop_rate: float = 0.0,
) -> nn.Module:
    if input_size < 32:
        raise UserError(f"mobilevit_xxs: input_size must be at least 32, got {input_size}")
    # timm sums the pretrained RGB stem over channels when in_chans=1.
    net = create_timm_model("mobilevit_xxs", pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
    return InputAdapter(net, input_size=input_size)
