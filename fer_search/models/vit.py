"""vit: Vision Transformer (timm), this project's addition: the series ran no ViT. Its "ViT" notebook
built timm's mobilevit_xxs (search_spaces/mobilevit.py holds that run); the README's ViT-Base and the
later ViT-tiny notebook never produced output.

mode="native" (default): a small ViT on the 48x48 input itself: patch_size 4 gives 12x12 tokens.
mode="resized": a timm ViT `variant` at its own resolution (224), the grayscale input resized and
    replicated to 3 channels so that RGB-pretrained weights (pretrained="timm") load as they are.

Both modes take mean 0.5 and std 0.5 on every channel of 0..1 pixels (what timm's ViT weights were
trained with) unless input_scaling says otherwise.
"""
from __future__ import annotations

import timm
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from fer_search.data.types import IMAGE_SIZE
from fer_search.errors import UserError
from fer_search.models.layers import InputAdapter
from fer_search.models.pretrained import create_timm_model
from fer_search.models.registry import model_hparams, register_model


MODES = ("native", "resized")
_NATIVE_ONLY = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")


@register_model(normalization=(0.5, 0.5))
def vit(
    num_classes: int = 7,
    in_chans: int = 1,
    pretrained: bool = False,
    *,
    mode: str = "native",
    variant: str = "vit_tiny_patch16_224",
    patch_size: int = 4,
    embed_dim: int = 192,
    depth: int = 6,
    num_heads: int = 3,
    mlp_ratio: float = 4.0,
    drop_rate: float = 0.0,
) -> nn.Module:
    """`variant` applies to mode="resized" only; patch_size, embed_dim, depth, num_heads and
    mlp_ratio to mode="native" only. drop_rate (dropout before the head) applies to both."""
    if mode not in MODES:
        raise UserError(f"vit: mode must be one of {', '.join(MODES)}, got {mode!r}")
    given = dict(variant=variant, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio)
    defaults = model_hparams("vit")
    ignored = [key for key, value in given.items() if value != defaults[key] and (key in _NATIVE_ONLY) == (mode == "resized")]
    if ignored:
        raise UserError(f"vit mode={mode!r} does not use {', '.join(ignored)}; leave them at their defaults or change mode")

    if mode == "resized":
        if variant not in timm.list_models("vit_*"):
            raise UserError(f"vit: unknown timm ViT variant {variant!r}; see timm.list_models('vit_*')")
        if in_chans not in (1, 3):
            raise UserError(f"vit mode='resized' takes 1 (replicated) or 3 input channels, got in_chans={in_chans}")
        net = create_timm_model(variant, pretrained=pretrained, num_classes=num_classes, in_chans=3, drop_rate=drop_rate)
        return InputAdapter(net, input_size=net.pretrained_cfg["input_size"][-1], repeat_to_chans=3)

    if pretrained:
        raise UserError("vit mode='native' has no timm pretrained weights; use mode='resized' or pretrained=PATH")
    if IMAGE_SIZE % patch_size or embed_dim % num_heads:
        raise UserError(
            f"vit: patch_size must divide 48 and num_heads must divide embed_dim, "
            f"got patch_size={patch_size}, embed_dim={embed_dim}, num_heads={num_heads}"
        )
    return VisionTransformer(
        img_size=IMAGE_SIZE,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        drop_rate=drop_rate,
    )
