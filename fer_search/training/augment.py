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
        pad = int(params["pad_crop"])
        x = random_crop(F.pad(x, (pad,) * 4, mode="replicate"), x.shape[-1], generator)
    if params.get("crop", 0) > 0:
        x = random_crop(x, int(params["crop"]), generator)

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


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """A (size x size) window at a random place, drawn per image, gathered in one pass for the batch."""
    b, c, h, w = x.shape
    dy = torch.randint(0, h - size + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, w - size + 1, (b,), device=x.device, generator=generator)
    rows = (dy.view(b, 1) + torch.arange(size, device=x.device)).view(b, 1, size, 1).expand(-1, c, -1, w)
    x = x.gather(2, rows)
    cols = (dx.view(b, 1) + torch.arange(size, device=x.device)).view(b, 1, 1, size).expand(-1, c, size, -1)
    return x.gather(3, cols)


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


def tta_views(x: torch.Tensor, mode: str, crop: int = 0) -> list[torch.Tensor]:
    """Test-time views of a batch: 'none' (1 view), 'flip' (2) or 'crops' (5 crops x flip = 10).

    A model trained on random crops (`crop` > 0) sees crops of that side: the centre crop, and for
    'crops' the four corners too (the ten-crop test of the FER2013 VGG recipes). A model trained on
    whole images sees the whole image, and for 'crops' four copies shifted by 2 pixels.
    """
    if crop:
        h, w = x.shape[-2:]
        top, left = (h - crop) // 2, (w - crop) // 2
        views = [x[..., top : top + crop, left : left + crop]]
        if mode == "crops":
            views += [x[..., :crop, :crop], x[..., :crop, w - crop :], x[..., h - crop :, :crop],
                      x[..., h - crop :, w - crop :]]
    else:
        views = [x]
        if mode == "crops":
            shift = 2
            padded = F.pad(x, (shift,) * 4, mode="replicate")
            h, w = x.shape[-2:]
            for dy, dx in ((0, 0), (0, 2 * shift), (2 * shift, 0), (2 * shift, 2 * shift)):
                views.append(padded[..., dy : dy + h, dx : dx + w])
    if mode == "none":
        return views
    return views + [v.flip(-1) for v in views]
