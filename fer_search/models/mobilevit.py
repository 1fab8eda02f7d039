"""mobilevit_xxs: timm's MobileViT-XXS on grayscale FER input.

The series' "ViT" notebook (06_vit_transformer) built this network, ImageNet-pretrained, at 224x224,
and its final model is the same network (search_spaces/mobilevit.py). It fed three equal copies of the
gray image; a one-channel stem whose weights are the sum of the RGB stem's (timm's in_chans=1) computes
the same. The input is resized inside `forward` to `input_size`: 224 is the series'; 48 (the default:
no resizing) makes timm interpolate MobileViT's feature maps, which 64 or 96 avoid, at a fraction of
224's cost.
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
