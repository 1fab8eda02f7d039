"""A procedurally drawn, FER-like data set: runs every command without the real data.

48x48 grayscale cartoon faces whose 7 expressions differ in mouth (smile, frown, open O, flat,
wide), eyes (wide, narrow) and brows (raised, lowered, slanted). Expression strength, face shape,
pose, lighting, occluders and noise vary per image so that a small CNN learns it clearly above
the majority class but not perfectly; class proportions follow FER2013's train set (rare disgust).
Everything is numpy on (chunk, 48, 48) arrays, so 5,000 images take about a second.
"""
from __future__ import annotations

import numpy as np

from fer_search.data.splits import carve_validation
from fer_search.data.types import IMAGE_SIZE, NUM_CLASSES, FERData, Split

# FER2013 train counts in class-id order (angry, disgust, fear, happy, sad, surprise, neutral).
FER2013_TRAIN_COUNTS = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965])

# Per class: eye half-height, brow gap above the eyes, brow slope (+ = inner ends up),
# mouth half-width, mouth curvature (+ = smile), mouth opening, nose wrinkle, mouth tilt.
_PARAMS = ["eye_h", "brow_gap", "brow_slope", "mouth_w", "mouth_k", "mouth_open", "wrinkle", "mouth_tilt"]
_EXPRESSIONS = np.array([
    # eye_h brow_gap slope mouth_w mouth_k open  wrinkle tilt
    [0.040, 0.105, -0.55, 0.160, -0.30, 0.000, 0.3, 0.00],  # angry: lowered V brows, pressed mouth
    [0.035, 0.115, -0.30, 0.180, -0.60, 0.030, 1.0, 0.35],  # disgust: wrinkled nose, raised lip corner
    [0.085, 0.230, 0.50, 0.240, -0.40, 0.060, 0.0, 0.00],   # fear: wide eyes, raised inner brows, stretched mouth
    [0.035, 0.170, 0.00, 0.240, 1.60, 0.040, 0.0, 0.00],    # happy: smile, squinting eyes
    [0.040, 0.160, 0.55, 0.170, -1.30, 0.000, 0.0, 0.00],   # sad: frown, inner brows up
    [0.090, 0.270, 0.10, 0.100, 0.00, 0.170, 0.0, 0.00],    # surprise: raised brows, open O mouth
    [0.055, 0.170, 0.00, 0.180, 0.00, 0.000, 0.0, 0.00],    # neutral
])
# Person-to-person spread of each parameter, so one threshold never separates two classes.
_SPREAD = np.array([0.012, 0.03, 0.18, 0.03, 0.35, 0.025, 0.25, 0.12])
_CHUNK = 500


def make_synthetic(n_train: int = 4000, n_test: int = 1000, seed: int = 0, *, val_fraction: float = 0.1) -> FERData:
    """Deterministic for `seed` (which also draws the stratified val carve; val_fraction=0: none)."""
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    train = _draw_split("train", n_train, np.random.default_rng(train_seq))
    test = _draw_split("test", n_test, np.random.default_rng(test_seq))
    data = FERData("synthetic", "synthetic", train, None, test)
    data.report.notes.append(f"procedurally drawn faces (seed {seed}), not FER2013")
    return carve_validation(data, val_fraction, seed)


def class_counts_like_fer2013(n: int) -> np.ndarray:
    """Split n over the classes in FER2013's train proportions (largest remainder, sums to n)."""
    quota = FER2013_TRAIN_COUNTS * n / FER2013_TRAIN_COUNTS.sum()
    counts = np.floor(quota).astype(int)
    counts[np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _draw_split(name: str, n: int, rng: np.random.Generator) -> Split:
    labels = rng.permutation(np.repeat(np.arange(NUM_CLASSES), class_counts_like_fer2013(n)))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for start in range(0, n, _CHUNK):
        images[start:start + _CHUNK] = _render(labels[start:start + _CHUNK], rng)
    ids = np.array([f"synthetic/{name}/{i:06d}" for i in range(n)])
    return Split(images, labels.astype(np.int64), ids)


def _ramp(signed_distance: np.ndarray, width: float = 0.03) -> np.ndarray:
    """Soft inside-mask from a signed distance (positive inside): antialiased edges."""
    return np.clip(0.5 + signed_distance / width, 0.0, 1.0)


def _paint(img: np.ndarray, mask: np.ndarray, value) -> np.ndarray:
    return img + (value - img) * mask


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One face per label, drawn part by part (each part's random draws in a fixed order: a seed's faces never change)."""
    b = len(labels)

    def per_image(low, high):
        return rng.uniform(low, high, (b, 1, 1)).astype(np.float32)

    expression = _expression(labels, rng)
    x, y, u, v = _pose(per_image)
    img = _head(per_image, rng, u, v, b)
    img = _eyes_and_nose(img, per_image, u, v, expression)
    img = _mouth(img, per_image, u, v, expression)
    return _occluded_and_lit(img, per_image, rng, x, y)


def _expression(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The face parameters (_PARAMS): neutral + strength * (class - neutral), plus person-to-person spread."""
    strength = rng.uniform(0.45, 1.15, (len(labels), 1))
    p = _EXPRESSIONS[6] + strength * (_EXPRESSIONS[labels] - _EXPRESSIONS[6])
    p = p + rng.normal(0, 1, p.shape) * _SPREAD
    params = {name: p[:, i, None, None].astype(np.float32) for i, name in enumerate(_PARAMS)}
    for name, floor in (("eye_h", 0.012), ("mouth_w", 0.06), ("mouth_open", 0)):
        params[name] = np.maximum(params[name], floor)
    return params


def _pose(per_image) -> tuple[np.ndarray, ...]:
    """Pixel coordinates (x, y) in [-1, 1] and face coordinates (u right, v down) after rotation, scale and shift."""
    grid = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE * 2 - 1
    x, y = grid[None, None, :], grid[None, :, None]
    angle = per_image(-0.25, 0.25)  # about +/-14 degrees
    scale = per_image(0.82, 1.12)
    dx, dy = per_image(-0.12, 0.12), per_image(-0.12, 0.12)
    cos, sin = np.cos(angle), np.sin(angle)
    return x, y, (cos * (x - dx) + sin * (y - dy)) / scale, (-sin * (x - dx) + cos * (y - dy)) / scale


def _head(per_image, rng: np.random.Generator, u: np.ndarray, v: np.ndarray, b: int) -> np.ndarray:
    """Background, face and hair."""
    img = np.broadcast_to(per_image(0.05, 0.75), (b, IMAGE_SIZE, IMAGE_SIZE)).copy()
    face_a, face_b = per_image(0.55, 0.70), per_image(0.72, 0.88)
    face = _ramp((1 - np.sqrt((u / face_a) ** 2 + ((v - 0.05) / face_b) ** 2)) * 0.6)
    img = _paint(img, face, per_image(0.5, 0.85) + 0.08 * u)
    hairline = per_image(-0.75, -0.45)
    hair = face * _ramp(hairline - v + 0.04 * np.sin(9 * u), 0.05) * (rng.random((b, 1, 1)) < 0.8)
    return _paint(img, hair, per_image(0.03, 0.45))


def _eyes_and_nose(img: np.ndarray, per_image, u: np.ndarray, v: np.ndarray, e: dict[str, np.ndarray]) -> np.ndarray:
    """Eyes at (+/-eye_x, eye_y): dark ellipses, wide or narrow; brows above with gap and slope; nostrils, and
    wrinkle lines beside the nose (disgust)."""
    eye_x, eye_y = per_image(0.24, 0.32), per_image(-0.18, -0.08)
    au = np.abs(u)
    eye = _ramp((1 - np.sqrt(((au - eye_x) / 0.11) ** 2 + ((v - eye_y) / e["eye_h"]) ** 2)) * e["eye_h"], 0.02)
    img = _paint(img, eye, per_image(0.02, 0.2))
    brow_y = eye_y - e["brow_gap"] - e["brow_slope"] * (eye_x - au) * 0.6
    brow = _ramp(0.022 - np.abs(v - brow_y), 0.025) * _ramp(0.14 - np.abs(au - eye_x), 0.03)
    img = _paint(img, brow, per_image(0.05, 0.3))
    nose_y = per_image(0.15, 0.24)
    nostril = _ramp(0.03 - np.sqrt((au - 0.06) ** 2 + (v - nose_y) ** 2), 0.025)
    img = _paint(img, nostril, img * 0.6)
    wrinkles = _ramp(0.012 - np.abs(v - nose_y + 0.12 + 0.05 * (au - 0.12)), 0.02) * _ramp(0.06 - np.abs(au - 0.13), 0.03)
    return _paint(img, wrinkles, img * (1 - 0.5 * np.clip(e["wrinkle"], 0, 1.2)))


def _mouth(img: np.ndarray, per_image, u: np.ndarray, v: np.ndarray, e: dict[str, np.ndarray]) -> np.ndarray:
    """A curved line (smile/frown, tilted for disgust) opening into a dark hole."""
    mouth_y = per_image(0.40, 0.50)
    across = np.clip(u / e["mouth_w"], -1, 1)
    centre = mouth_y - e["mouth_k"] * 0.12 * (across ** 2 - 0.33) - e["mouth_tilt"] * 0.06 * across
    half_open = 0.012 + e["mouth_open"] * np.sqrt(1 - across ** 2)
    mouth = _ramp(half_open - np.abs(v - centre), 0.025) * _ramp(e["mouth_w"] - np.abs(u), 0.03)
    return _paint(img, mouth, per_image(0.0, 0.2))


def _occluded_and_lit(img: np.ndarray, per_image, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Occluders (hands, glasses, text on FER2013's web images): a random blob on 20% of images; then lighting: a
    directional gradient, brightness/contrast and sensor noise."""
    occluded = rng.random((len(img), 1, 1)) < 0.2
    ox, oy, orad = per_image(-0.9, 0.9), per_image(-0.9, 0.9), per_image(0.12, 0.35)
    blob = _ramp(orad - np.sqrt((x - ox) ** 2 + (y - oy) ** 2)) * occluded
    img = _paint(img, blob, per_image(0.0, 1.0))
    light = per_image(0, 2 * np.pi)
    img = img * (1 + per_image(0, 0.5) * (np.cos(light) * x + np.sin(light) * y))
    img = (img - 0.5) * per_image(0.6, 1.3) + 0.5 + per_image(-0.15, 0.15)
    img = img + rng.normal(0, 1, img.shape).astype(np.float32) * per_image(0.02, 0.09)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)

