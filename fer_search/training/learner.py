"""One optimisation step and one epoch of it: the loss (class weights, label smoothing, timm's
Mixup/CutMix) and the step (batched augmentation, optimiser, per-step schedule, timm's weight EMA).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.utils import ModelEmaV3

from fer_search.data.types import NUM_CLASSES
from fer_search.training.augment import augment_batch
from fer_search.training.config import TrainConfig
from fer_search.training.imbalance import class_weights


@dataclass
class Criterion:
    """Cross-entropy with the run's class weights and label smoothing, on timm-mixed batches when asked."""

    weights: torch.Tensor | None
    label_smoothing: float
    mixer: Mixup | None

    @classmethod
    def for_config(cls, config: TrainConfig, train_labels: np.ndarray, dev: torch.device) -> "Criterion":
        weights = (class_weights(train_labels, NUM_CLASSES).to(dev)
                   if config.imbalance in ("weighted_loss", "both") else None)
        mixer = None
        if config.mixup > 0 or config.cutmix > 0:
            # Smoothing is left to cross_entropy, which applies it to the mixed (soft) targets too.
            mixer = Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, prob=config.mix_prob,
                          label_smoothing=0.0, num_classes=NUM_CLASSES)
        return cls(weights, config.label_smoothing, mixer)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = y
        if self.mixer is not None and len(y) % 2 == 0:  # timm mixes each image with its mirror in the batch
            x, targets = self.mixer(x, y)
        logits = model(x).float()
        return F.cross_entropy(logits, targets, weight=self.weights, label_smoothing=self.label_smoothing), logits


@dataclass
class Learner:
    """Everything one optimisation step touches."""

    network: torch.nn.Module
    forward_network: Callable  # the network that steps call: `network`, or its torch.compile when asked
    ema: ModelEmaV3 | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scheduler_per_step: bool  # cosine and one-cycle step per batch, plateau per epoch
    criterion: Criterion
    augmentation: dict[str, float]
    pixel_mean: float
    pixel_std: float
    generator: torch.Generator
    bf16: bool  # autocast the forward pass
    grad_clip: float = 0.0  # largest gradient norm of a step; 0 = off
    steps_done: int = 0

    def epoch(self, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, batch_size: int, steps: int,
              bar) -> tuple[float, float, int]:
        """One pass over `order` -> (mean loss, accuracy on the augmented batches, images seen)."""
        self.network.train()
        dev = images.device
        loss_sum, correct, seen = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            y = labels[index]
            loss, logits = self.step(images[index], y)
            loss_sum += loss * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
        return float(loss_sum) / seen, float(correct) / seen, seen

    def step(self, batch: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = augment_batch(batch.unsqueeze(1).float(), self.augmentation, self.generator)
        x = ((x - self.pixel_mean) / self.pixel_std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss, logits = self.criterion(self.forward_network, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
        self.optimizer.step()
        self.steps_done += 1
        if self.scheduler_per_step:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.network, step=self.steps_done)  # the step drives the EMA's warm-up
        return loss.detach(), logits.detach()
