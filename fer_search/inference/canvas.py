"""FER2013 faces pasted, upscaled, onto a larger picture at known places: how the face path is measured.

benchmarks/faces.py, benchmarks/face_detectors.py and the tests build such canvases, run a detector
on them and compare what it finds with where each face was pasted.
"""
from __future__ import annotations

import numpy as np

from fer_search.inference.faces import Box


def compose(faces: list[np.ndarray], rng: np.random.Generator, size: tuple[int, int] = (640, 480),
            face_sides: tuple[int, int] = (96, 160), gap: int = 16) -> tuple[np.ndarray, list[Box]]:
    """48x48 uint8 faces -> (rgb uint8 canvas (H, W, 3), where each face went).

    Each face is upscaled (bicubic) to a random side in `face_sides` and placed at a random spot at
    least `gap` pixels from the others, on a shaded, noisy gray background.
    """
    from PIL import Image

    width, height = size
    shading = 110 + 30 * np.linspace(-1, 1, width)[None, :] + rng.normal(0, 12, (height, width))
    canvas = Image.fromarray(shading.clip(0, 255).astype(np.uint8))
    placed: list[Box] = []
    for face in faces:
        side = int(rng.integers(face_sides[0], face_sides[1] + 1))
        for _ in range(1000):
            spot = Box(int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side, side)
            if all(_apart(spot, other, gap) for other in placed):
                break
        else:
            raise ValueError(f"{len(faces)} faces of up to {face_sides[1]} px do not fit on a {width}x{height} canvas")
        canvas.paste(Image.fromarray(face).resize((side, side), Image.BICUBIC), (spot.x, spot.y))
        placed.append(spot)
    return np.asarray(canvas.convert("RGB")), placed


def _apart(a: Box, b: Box, gap: int) -> bool:
    return (a.x + a.w + gap <= b.x or b.x + b.w + gap <= a.x or
            a.y + a.h + gap <= b.y or b.y + b.h + gap <= a.y)


def match(found: list[Box], truth: list[Box], min_iou: float = 0.5) -> list[int | None]:
    """For each true box, the index of the found box that overlaps it best (IoU >= min_iou), each found
    box used at most once; None where no found box qualifies."""
    pairs = sorted(((t.iou(f), ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)), reverse=True)
    matched: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for overlap, ti, fi in pairs:
        if overlap >= min_iou and matched[ti] is None and fi not in used:
            matched[ti] = fi
            used.add(fi)
    return matched
