"""Train one configuration, top to bottom (nanoGPT-style): the `train` command and every search trial run this.

The whole data set stays on the training device as uint8; each batch is gathered by index and augmented
there in one batched pass, so no DataLoader workers or per-image PIL work sit on the hot path.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fer_search.data.types import NUM_CLASSES, FERData, Split
from fer_search.errors import UserError
from fer_search.models import create_model, model_normalization
from fer_search.training import checkpoint
from fer_search.training.augment import augment_batch
from fer_search.training.config import TrainConfig
from fer_search.training.imbalance import class_weights, oversampled_epoch
from fer_search.training.metrics import classification_metrics, negative_log_likelihood
from fer_search.training.predictor import NormalizedModel


@dataclass
class BestSnapshot:
    """The best epoch so far by the selection metric: what a trial keeps."""

    epoch: int
    metrics: dict[str, float]
    entry: dict[str, Any]  # checkpoint.model_entry of that epoch
    val_probs: np.ndarray
    test_probs: np.ndarray | None


@dataclass
class EpochState:
    """Handed to `on_epoch` after each epoch."""

    epoch: int
    metrics: dict[str, float]
    is_best: bool
    best: BestSnapshot
    resume_state: Callable[[], dict[str, Any]]  # lazily built: only checkpointing callers pay for it
    finished_by: str | None = None  # set on the trainer's last epoch: "max_epochs" or "early_stopping"


@dataclass
class TrainResult:
    best: BestSnapshot
    history: list[dict[str, float]] = field(default_factory=list)
    finished_by: str = "max_epochs"  # or "early_stopping"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} asked for, but no CUDA device is visible; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda or auto; got '{device}'")
    return torch.device(device)


def train(
    config: TrainConfig,
    data: FERData,
    *,
    device: str = "auto",
    out_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, float], EpochState], None] | None = None,
    resume: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    dev = resolve_device(device)
    if config.overfit_images:
        data = data.overfit_check(config.overfit_images, config.seed)
    train_split, val_split = _require_splits(data)
    test_split = data.test if data.test is not None and len(data.test) else None
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    cuda = dev.type == "cuda"

    # Data on the device, once, as uint8.
    images = torch.as_tensor(train_split.images).to(dev)
    labels = torch.as_tensor(train_split.labels).to(dev)
    # A family documented with its own normalisation (vit: 0.5, 0.5) keeps it; the others take the training set's.
    mean, std = model_normalization(config.arch) or (float(train_split.images.mean()) / 255.0,
                                                     float(train_split.images.std()) / 255.0)
    pixel_mean, pixel_std = mean * 255.0, std * 255.0

    network = create_model(config.arch, num_classes=NUM_CLASSES, pretrained=config.pretrained, **config.model).to(dev)
    # channels_last speeds convolutions on CUDA and on CPU alike (oneDNN): 25-65% for our CNNs on CPU.
    network = network.to(memory_format=torch.channels_last)
    evaluator = NormalizedModel(network, mean, std, config.tta)
    step_fn = torch.compile(network) if config.compile else network

    epoch_size = len(images) if config.max_train_images <= 0 else min(config.max_train_images, len(images))
    steps_per_epoch = max(1, epoch_size // config.batch_size)  # drop the ragged last batch: BatchNorm dislikes size 1
    optimizer = _make_optimizer(config, network)
    scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
    loss_weights = (
        class_weights(train_split.labels, NUM_CLASSES).to(dev) if config.imbalance in ("weighted_loss", "both") else None
    )
    augmentation = config.augmentation()

    start_epoch, history, best, bad_epochs = 1, [], None, 0
    if resume is not None:
        network.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"].to(generator.get_state().device))
        torch.set_rng_state(resume["torch_rng"])
        if cuda and resume.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resume["cuda_rng"])
        start_epoch, history, bad_epochs = resume["epoch"] + 1, list(resume["history"]), resume["bad_epochs"]
        best = _snapshot_from_state(resume["best"])

    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=(config.epochs - start_epoch + 1) * steps_per_epoch, disable=not progress, unit="step",
               desc=config.arch, dynamic_ncols=True)
    finished_by = "max_epochs"

    for epoch in range(start_epoch, config.epochs + 1):
        network.train()
        started = time.perf_counter()
        if config.imbalance in ("oversample", "both"):
            order = oversampled_epoch(labels, NUM_CLASSES, epoch_size, generator)
        else:
            order = torch.randperm(len(images), device=dev, generator=generator)[:epoch_size]
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev)
        seen = 0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = augment_batch(images[index].unsqueeze(1).float(), augmentation, generator)
            x = (x - pixel_mean) / pixel_std
            y = labels[index]
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                loss, logits = _loss(step_fn, x, y, config, loss_weights, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None and config.schedule in ("cosine", "onecycle"):
                scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
        train_seconds = time.perf_counter() - started

        val_probs = _predict(evaluator, val_split.images, dev)
        metrics: dict[str, float] = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / seen,
            "train_acc": float(correct) / seen,
            "val_loss": negative_log_likelihood(val_probs, val_split.labels),
            **classification_metrics(val_probs, val_split.labels, prefix="val_"),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if scheduler is not None and config.schedule == "plateau":
            scheduler.step(metrics[config.metric])

        is_best = best is None or metrics[config.metric] > best.metrics[config.metric]
        if is_best:
            test_probs = _predict(evaluator, test_split.images, dev) if test_split is not None else None
            if test_probs is not None and test_split.labeled:
                metrics["test_loss"] = negative_log_likelihood(test_probs, test_split.labels)
                metrics.update(classification_metrics(test_probs, test_split.labels, prefix="test_"))
            bad_epochs = 0
        else:
            bad_epochs += 1
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["images_per_s"] = seen / train_seconds
        if is_best:
            entry = checkpoint.model_entry(
                config.arch, config.model, network.state_dict(), (mean, std),
                config=config.to_flat(), epoch=epoch, metrics=metrics, tta=config.tta,
            )
            best = BestSnapshot(epoch, dict(metrics), entry, val_probs, test_probs)
        history.append(metrics)
        bar.set_postfix(epoch=epoch, val_acc=f"{metrics['val_acc']:.3f}", best=f"{best.metrics['val_acc']:.3f}")
        if progress:
            bar.write(_epoch_line(metrics, is_best))
        if out_path is not None:
            _write_history(out_path / "metrics.csv", history)
            if is_best:
                checkpoint.save(best.entry, out_path / "model.pt")

        stop = config.patience > 0 and bad_epochs >= config.patience
        if stop:
            finished_by = "early_stopping"
        if on_epoch is not None:
            state = EpochState(
                epoch, metrics, is_best, best,
                resume_state=lambda: _resume_state(network, optimizer, scheduler, generator, epoch, history, best, bad_epochs),
                finished_by=finished_by if stop or epoch == config.epochs else None,
            )
            on_epoch(metrics, state)
        if stop:
            break
    bar.close()
    return TrainResult(best=best, history=history, finished_by=finished_by)


def _require_splits(data: FERData) -> tuple[Split, Split]:
    if data.train is None or len(data.train) == 0:
        raise UserError(f"{data.name} has no training images; training needs a train split")
    if not data.train.labeled:
        raise UserError(f"{data.name}: the train split has unlabeled images; training needs labels")
    if data.val is None or len(data.val) == 0 or not data.val.labeled:
        raise UserError(f"{data.name} has no labeled validation split (is val_fraction 0?)")
    return data.train, data.val


def _loss(step_fn, x, y, config: TrainConfig, weights, generator):
    if config.mixup > 0:
        lam = float(torch.distributions.Beta(config.mixup, config.mixup).sample())  # global RNG: seeded in train()
        perm = torch.randperm(len(y), device=x.device, generator=generator)
        logits = step_fn(lam * x + (1 - lam) * x[perm]).float()
        loss = lam * F.cross_entropy(logits, y, weight=weights, label_smoothing=config.label_smoothing) + (
            1 - lam
        ) * F.cross_entropy(logits, y[perm], weight=weights, label_smoothing=config.label_smoothing)
        return loss, logits
    logits = step_fn(x).float()
    return F.cross_entropy(logits, y, weight=weights, label_smoothing=config.label_smoothing), logits


@torch.no_grad()
def _predict(evaluator: NormalizedModel, images: np.ndarray, dev: torch.device, batch_size: int = 1024) -> np.ndarray:
    evaluator.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size]).to(dev).unsqueeze(1).float()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            chunks.append(evaluator(x).float().cpu())
    return torch.cat(chunks).numpy()


def _make_optimizer(config: TrainConfig, network: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in network.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch + config.warmup_fraction * total)
        half_wave = config.cosine_t_max * steps_per_epoch or total - warmup

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, half_wave)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return None


def _resume_state(network, optimizer, scheduler, generator, epoch, history, best: BestSnapshot, bad_epochs) -> dict[str, Any]:
    return {
        "model": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state().cpu(),
        "torch_rng": torch.get_rng_state(),  # dropout and mixup draw from the global generator
        "cuda_rng": torch.cuda.get_rng_state() if generator.device.type == "cuda" else None,
        "epoch": epoch,
        "history": list(history),
        "bad_epochs": bad_epochs,
        "best": {
            "epoch": best.epoch,
            "metrics": best.metrics,
            "entry": best.entry,
            "val_probs": torch.from_numpy(best.val_probs),
            "test_probs": None if best.test_probs is None else torch.from_numpy(best.test_probs),
        },
    }


def _snapshot_from_state(state: dict[str, Any]) -> BestSnapshot:
    test = state["test_probs"]
    return BestSnapshot(state["epoch"], state["metrics"], state["entry"], state["val_probs"].numpy(),
                        None if test is None else test.numpy())


def _epoch_line(metrics: dict[str, float], is_best: bool) -> str:
    line = (
        f"epoch {metrics['epoch']:>3}  train loss {metrics['train_loss']:.3f} acc {metrics['train_acc']:.3f}  "
        f"val loss {metrics['val_loss']:.3f} acc {metrics['val_acc']:.3f} macro-F1 {metrics['val_macro_f1']:.3f}  "
        f"lr {metrics['lr']:.2e}  {metrics['images_per_s']:.0f} img/s"
    )
    return line + ("  *best" if is_best else "")


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)
