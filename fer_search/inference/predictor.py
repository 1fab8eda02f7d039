"""One inference module for a single model or an ensemble: raw pixels in, class probabilities out.

The same `Predictor` serves `evaluate`, `predict`, the ensemble's scoring and `export` (it traces
cleanly), so every path computes probabilities exactly the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_search.models import create_model
from fer_search.training import checkpoint
from fer_search.training.augment import tta_views


def combine_probs(member_probs: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """(M, B, C) member probabilities -> (B, C): weighted soft vote, then temperature on its log."""
    weights = weights / weights.sum()
    mixed = (member_probs * weights.view(-1, 1, 1)).sum(0)
    if temperature == 1.0:
        return mixed
    return torch.softmax(torch.log(mixed.clamp_min(1e-12)) / temperature, dim=-1)


class NormalizedModel(nn.Module):
    """A trained network with its own input normalisation and test-time views."""

    def __init__(self, network: nn.Module, mean: float, std: float, tta: str = "none", crop: int = 0):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean * 255.0))
        self.register_buffer("std", torch.tensor(std * 255.0))
        self.tta = tta
        self.crop = crop  # the side the network was trained on (random crops), 0 = the whole image

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        views = tta_views((pixels - self.mean) / self.std, self.tta, self.crop)
        return torch.stack([torch.softmax(self.network(v).float(), dim=-1) for v in views]).mean(0)


class Predictor(nn.Module):
    """forward(pixels: float (B, 1, 48, 48) in 0..255) -> probabilities (B, num_classes)."""

    def __init__(self, members: list[NormalizedModel], weights: list[float], temperature: float, class_names: list[str]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.temperature = float(temperature)
        self.class_names = list(class_names)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        member_probs = torch.stack([m(pixels) for m in self.members])
        return combine_probs(member_probs, self.weights, self.temperature)

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """images: uint8 (N, 48, 48) -> float32 (N, num_classes)."""
        self.eval()
        device = self.weights.device
        out = []
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            out.append(self(chunk.to(device).unsqueeze(1).float()).cpu())
        if not out:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return torch.cat(out).numpy()


def build_member(entry: dict[str, Any], tta: str | None = None) -> NormalizedModel:
    network = create_model(entry["arch"], num_classes=len(entry["class_names"]), **entry["model_hparams"])
    network.load_state_dict(entry["state_dict"])
    norm = entry["normalization"]
    return NormalizedModel(network, norm["mean"], norm["std"], tta if tta is not None else entry.get("tta", "none"),
                           entry.get("crop", 0))


def load_predictor(source: str | Path | dict[str, Any], device: str = "cpu", tta: str | None = None) -> Predictor:
    """A model file or ensemble file (path or already-loaded dict) -> Predictor in eval mode.

    `tta` overrides the file's own test-time augmentation setting when given.
    """
    entry = source if isinstance(source, dict) else checkpoint.load(source)
    if entry["format"] == checkpoint.ENSEMBLE_FORMAT:
        chosen_tta = tta if tta is not None else entry.get("tta", "none")
        members = [build_member(m, chosen_tta) for m in entry["members"]]
        predictor = Predictor(members, entry["weights"], entry["temperature"], entry["class_names"])
    else:
        predictor = Predictor([build_member(entry, tta)], [1.0], 1.0, entry["class_names"])
    return predictor.to(device).eval()

