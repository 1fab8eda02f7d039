"""The class-imbalance options: inverse-frequency loss weights and oversampled epochs."""
from __future__ import annotations

import numpy as np
import torch


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Normalised inverse-frequency weights (sklearn's 'balanced'): w_c = N / (K * n_c).

    The sample-weighted mean of the weights is 1, so the loss keeps its usual scale.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def oversampled_epoch(labels: torch.Tensor, num_classes: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of one epoch drawn with replacement, each image weighted by 1 / its class count.

    Same behaviour as torch's WeightedRandomSampler with those weights, but drawn on the data's device.
    """
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).float()
    per_image = (1.0 / counts)[labels]
    return torch.multinomial(per_image, size, replacement=True, generator=generator)
