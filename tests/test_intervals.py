"""The paired-bootstrap interval of an accuracy gain (analysis/intervals.py)."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.intervals import accuracy_gain


def _outcomes(images: int, right: int, flipped: int) -> tuple[np.ndarray, np.ndarray]:
    """A right on `right` images; B the same except `flipped` of A's right answers, which B gets wrong."""
    a = np.zeros(images, dtype=bool)
    a[:right] = True
    b = a.copy()
    b[:flipped] = False
    return a, b


def test_a_small_gain_on_the_same_images_is_told_apart_because_the_bootstrap_is_paired():
    a, b = _outcomes(3000, 2000, 40)  # 40 of 3,000 images differ, all in A's favour
    gain = accuracy_gain(a, b)
    assert gain.gain == pytest.approx(40 / 3000)
    # Paired, only the 40 differing images vary between resamples: sd about sqrt(40) / 3000 = 0.0021.
    assert 0 < gain.low < gain.gain < gain.high and gain.high - gain.low < 0.012
    # Treated as two independent samples of 3,000 (sd about 0.012), the same gain would be indistinguishable from 0.
    rng = np.random.default_rng(0)
    unpaired = [a[rng.integers(0, 3000, 3000)].mean() - b[rng.integers(0, 3000, 3000)].mean() for _ in range(500)]
    assert np.percentile(unpaired, 2.5) < 0


def test_the_interval_matches_a_plain_resampling_of_the_images_and_reruns_to_the_same_figures():
    rng = np.random.default_rng(1)
    a, b = rng.random(800) < 0.66, rng.random(800) < 0.64
    gain = accuracy_gain(a, b)
    draws = rng.integers(0, 800, size=(4000, 800))
    by_hand = a[draws].mean(axis=1) - b[draws].mean(axis=1)
    assert gain.low == pytest.approx(np.percentile(by_hand, 2.5), abs=0.006)
    assert gain.high == pytest.approx(np.percentile(by_hand, 97.5), abs=0.006)
    assert gain.low < 0 < gain.high  # two models 2 points apart on 800 images: not told apart
    assert accuracy_gain(a, b) == gain  # seeded
    assert str(gain).startswith(f"{gain.gain:+.4f} [")


def test_identical_outcomes_give_a_zero_gain_and_mismatched_ones_are_refused():
    a, _ = _outcomes(100, 60, 0)
    same = accuracy_gain(a, a.copy())
    assert (same.gain, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equally long"):
        accuracy_gain(a, a[:50])
