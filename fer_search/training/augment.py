"""Batched augmentation on whatever device the batch lives on (airbench-style: no per-image PIL work).

Every geometric transform (flip, rotation, translation, scale, shear) folds into one affine matrix per
image and one `grid_sample` call per batch; photometric jitter and random erasing are tensor arithmetic.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, params: dict[str, float], generator: torch.Generator | None = None) -> torch.Tensor:
    """x: float (B, C, H, W) in pixel units 0..255. Returns an augmented tensor of the same shape."""
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, device=x.device, generator=generator) * (hi - lo) + lo

    if params.get("pad_crop", 0) > 0:
        x = _pad_and_crop(x, int(params["pad_crop"]), generator)

    geometric = any(params.get(k, 0) > 0 for k in ("hflip", "rotate", "translate", "scale", "shear"))
    if geometric:
        angle = uniform(-1, 1) * math.radians(params.get("rotate", 0.0))
        shear = uniform(-1, 1) * math.radians(params.get("shear", 0.0))
        zoom = 1.0 + uniform(-1, 1) * params.get("scale", 0.0)
        flip = torch.where(uniform(0, 1) < params.get("hflip", 0.0), -1.0, 1.0)
        tx = uniform(-1, 1) * 2 * params.get("translate", 0.0)  # grid units span 2 per side
        ty = uniform(-1, 1) * 2 * params.get("translate", 0.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # theta maps output coordinates to input coordinates: rotation @ shear @ (flip, 1/zoom).
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = (cos - sin * torch.tan(shear)) * flip / zoom
        theta[:, 0, 1] = (-sin) / zoom
        theta[:, 1, 0] = (sin + cos * torch.tan(shear)) * flip / zoom
        theta[:, 1, 1] = cos / zoom
        theta[:, 0, 2] = tx
        theta[:, 1, 2] = ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if params.get("brightness", 0) > 0 or params.get("contrast", 0) > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = (1.0 + uniform(-1, 1) * params.get("contrast", 0.0)).view(b, 1, 1, 1)
        brightness = (1.0 + uniform(-1, 1) * params.get("brightness", 0.0)).view(b, 1, 1, 1)
        x = ((x - mean) * contrast + mean) * brightness
        x = x.clamp(0, 255)

    if params.get("erasing", 0) > 0:
        x = _random_erasing(x, params["erasing"], generator)
    return x


def _pad_and_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(-1, x.shape[1], -1, w + 2 * pad)
    padded = padded.gather(2, rows)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(-1, x.shape[1], h, -1)
    return padded.gather(3, cols)


def _random_erasing(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """torchvision RandomErasing's defaults: area 2-33% of the image, aspect 0.3-3.3, random values."""
    b, _, h, w = x.shape
    dev = x.device
    rand = lambda: torch.rand(b, device=dev, generator=generator)  # noqa: E731
    area = (0.02 + rand() * 0.31) * h * w
    log_ratio = math.log(0.3) + rand() * (math.log(3.3) - math.log(0.3))
    ratio = torch.exp(log_ratio)
    eh = torch.sqrt(area * ratio).clamp(1, h).floor()
    ew = torch.sqrt(area / ratio).clamp(1, w).floor()
    top = (rand() * (h - eh + 1)).floor()
    left = (rand() * (w - ew + 1)).floor()
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (ys >= top.view(b, 1, 1)) & (ys < (top + eh).view(b, 1, 1))
        & (xs >= left.view(b, 1, 1)) & (xs < (left + ew).view(b, 1, 1))
    )
    chosen = (rand() < p).view(b, 1, 1)
    mask = (inside & chosen).unsqueeze(1)
    noise = torch.rand(x.shape, device=dev, generator=generator) * 255
    return torch.where(mask, noise, x)


def tta_views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """Test-time views of a batch: 'none', 'flip' (2 views) or 'crops' (5 shifted crops x flip = 10)."""
    if mode == "none":
        return [x]
    views = [x]
    if mode == "crops":
        shift = 2
        padded = F.pad(x, (shift,) * 4, mode="replicate")
        h, w = x.shape[-2:]
        for dy, dx in ((0, 0), (0, 2 * shift), (2 * shift, 0), (2 * shift, 2 * shift)):
            views.append(padded[..., dy : dy + h, dx : dx + w])
    return views + [v.flip(-1) for v in views]
