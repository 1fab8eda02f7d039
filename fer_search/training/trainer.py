"""Train one configuration, top to bottom (nanoGPT-style): the `train` command and every search trial run this.

The whole data set stays on the training device as uint8; each batch is gathered by index and augmented
there in one batched pass, so no DataLoader workers or per-image PIL work sit on the hot path.
"""
from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from timm.optim import param_groups_weight_decay
from timm.utils import ModelEmaV3

from fer_search.data.types import NUM_CLASSES, FERData, Split
from fer_search.errors import UserError
from fer_search.inference.predictor import NormalizedModel
from fer_search.models import create_initialised_model, model_normalization
from fer_search.terminal import progress_bar
from fer_search.training import checkpoint
from fer_search.training.checkpoint import BestSnapshot, RunState
from fer_search.training.config import INPUT_SCALINGS, TrainConfig
from fer_search.training.imbalance import oversampled_epoch
from fer_search.training.learner import Criterion, Learner
from fer_search.training.metrics import classification_keys, classification_metrics, negative_log_likelihood


@dataclass
class EpochState:
    """Handed to `on_epoch` after each epoch."""

    epoch: int
    metrics: dict[str, float]
    is_best: bool
    best: BestSnapshot
    resume_state: Callable[[], dict[str, Any]]  # lazily built: only checkpointing callers pay for it
    finished_by: str | None = None  # set on the trainer's last epoch: "max_epochs" or "early_stopping"


# A uniform prediction over the classes scores ln(7) ~ 1.95; an epoch whose mean training loss is this many times
# that has blown up (SGD at lr 1e5: 1e20 in epoch 1, then ~1e5 at chance for ever), NaN or not.
EXPLODED_LOSS_FACTOR = 100
EXPLODED_LOSS = EXPLODED_LOSS_FACTOR * math.log(NUM_CLASSES)


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite, or exploded (EXPLODED_LOSS): every later step would only spread it."""

    def __init__(self, epoch: int, loss: float):
        why = "" if not math.isfinite(loss) else f", over {EXPLODED_LOSS_FACTOR}x the loss of a uniform prediction"
        super().__init__(f"training diverged in epoch {epoch} (train loss {loss:.4g}{why}); try a lower lr")
        self.epoch = epoch
        self.loss = loss


def diverged(train_loss: float) -> bool:
    """Whether an epoch's mean training loss says the run diverged: non-finite, or exploded."""
    return not math.isfinite(train_loss) or train_loss > EXPLODED_LOSS


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
    keep: str = "best",
) -> TrainResult:
    """Train `config` on data.train; every epoch is scored on data.val (and test, reported only).

    keep="best" keeps the epoch with the best validation metric; keep="last" keeps the final epoch
    (refit: validation is then inside the training data and must not choose anything).
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")
    setup = TrainingSetup.build(config, data, resolve_device(device), say=progress)
    run = checkpoint.restore(resume, setup.learner) if resume is not None else RunState()
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=(config.epochs - run.epoch) * setup.steps_per_epoch, enabled=progress, unit="step",
                       desc=config.arch, dynamic_ncols=True)
    stop = False
    for epoch in range(run.epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        metrics, val_probs, images_per_s = setup.train_and_validate(epoch, bar)
        is_best = keep == "last" or run.best is None or metrics[config.metric] > run.best.metrics[config.metric]
        test_probs = setup.score_test(metrics, is_best)
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["images_per_s"] = images_per_s
        if is_best:
            run.best = BestSnapshot(epoch, dict(metrics), setup.model_entry(epoch, metrics), val_probs, test_probs)
        run.record(epoch, metrics, is_best)
        stop = config.early_stopping and run.bad_epochs >= config.patience
        finished_by = "early_stopping" if stop else "max_epochs" if epoch == config.epochs else None

        bar.set_postfix(epoch=epoch, val_acc=f"{metrics['val_acc']:.3f}", best=f"{run.best.metrics['val_acc']:.3f}")
        if progress:
            bar.write(_epoch_line(metrics, is_best))
        if out_path is not None:
            _write_history(out_path / "metrics.csv", run.history)
            if is_best:
                checkpoint.save(run.best.entry, out_path / "model.pt")
        if on_epoch is not None:
            on_epoch(metrics, EpochState(epoch, metrics, is_best, run.best, finished_by=finished_by,
                                         resume_state=lambda: checkpoint.resume_state(setup.learner, run)))
        if stop:
            break
    bar.close()
    return TrainResult(best=run.best, history=run.history, finished_by="early_stopping" if stop else "max_epochs")


@dataclass
class TrainingSetup:
    """What `train` builds before its first epoch: the splits, the data on the device, the network and its step."""

    config: TrainConfig
    dev: torch.device
    val_split: Split
    test_split: Split | None
    images: torch.Tensor  # the training images on the device, uint8
    labels: torch.Tensor
    normalization: tuple[float, float]  # (mean, std) on 0..1 pixels
    init: str  # how the weights started (recorded in the model file)
    learner: Learner
    evaluator: NormalizedModel  # the weights that are evaluated, kept and saved (the EMA's where there is one)
    epoch_size: int
    steps_per_epoch: int
    val_record: dict[str, Any]  # the validation split the best epoch is chosen on

    @classmethod
    def build(cls, config: TrainConfig, data: FERData, dev: torch.device, say: bool) -> "TrainingSetup":
        if config.overfit_images:
            data = data.overfit_check(config.overfit_images, config.seed)
        train_split, val_split = _require_splits(data)
        torch.manual_seed(config.seed)  # dropout and weight init
        np.random.seed(config.seed)  # timm's Mixup/CutMix draw from numpy's global generator
        generator = torch.Generator(device=dev).manual_seed(config.seed)
        images = torch.as_tensor(train_split.images).to(dev)  # on the device, once, as uint8
        labels = torch.as_tensor(train_split.labels).to(dev)
        mean, std = input_normalization(config, train_split.images)

        network, init = _build_network(config, dev, say)
        ema = ModelEmaV3(network, decay=config.ema, use_warmup=True) if config.ema > 0 else None
        scored = ema.module if ema is not None else network
        epoch_size = len(images) if config.max_train_images <= 0 else min(config.max_train_images, len(images))
        steps_per_epoch = max(1, epoch_size // config.batch_size)  # drop the ragged last batch: BatchNorm dislikes size 1
        optimizer = _make_optimizer(config, network)
        learner = Learner(network, torch.compile(network) if config.compile else network, ema, optimizer,
                          _make_scheduler(config, optimizer, steps_per_epoch), config.schedule in ("cosine", "onecycle"),
                          Criterion.for_config(config, train_split.labels, dev), config.augmentation(),
                          mean * 255.0, std * 255.0, generator, _bf16(config.precision, dev), grad_clip=config.grad_clip)
        test_split = data.test if data.test is not None and len(data.test) else None
        return cls(config, dev, val_split, test_split, images, labels, (mean, std), init, learner,
                   NormalizedModel(scored, mean, std, config.tta, config.crop), epoch_size, steps_per_epoch,
                   {**data.val_split, "ids_hash": data.val_ids_hash()})

    def train_and_validate(self, epoch: int, bar) -> tuple[dict[str, float], np.ndarray, float]:
        """One epoch of training, then the validation scores -> (metrics, validation probabilities, images/s)."""
        config, learner = self.config, self.learner
        started = time.perf_counter()
        order = _epoch_order(config, self.labels, self.epoch_size, learner.generator)
        train_loss, train_acc, seen = learner.epoch(self.images, self.labels, order, config.batch_size,
                                                    self.steps_per_epoch, bar)
        images_per_s = seen / (time.perf_counter() - started)
        if diverged(train_loss):
            bar.close()
            raise TrainingDiverged(epoch, train_loss)
        val_probs = _predict(self.evaluator, self.val_split.images, self.dev)
        metrics: dict[str, float] = {
            "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": negative_log_likelihood(val_probs, self.val_split.labels),
            **classification_metrics(val_probs, self.val_split.labels, prefix="val_"),
            "lr": learner.optimizer.param_groups[0]["lr"],
        }
        if config.schedule == "plateau":
            learner.scheduler.step(metrics[config.metric])
        elif config.schedule == "step":
            learner.scheduler.step()
        return metrics, val_probs, images_per_s

    def score_test(self, metrics: dict[str, float], is_best: bool) -> np.ndarray | None:
        """Test probabilities at a best epoch (reported only). The test metrics go into `metrics` at every epoch,
        NaN where it was not scored, so that every epoch has the same columns (a log that takes its columns from
        one row, as Ray's CSV logger does, stays aligned)."""
        if self.test_split is None:
            return None
        test_probs = _predict(self.evaluator, self.test_split.images, self.dev) if is_best else None
        if self.test_split.labeled:
            metrics.update(_test_metrics(test_probs, self.test_split.labels))
        return test_probs

    def model_entry(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        """The model file's entry for this epoch (checkpoint.model_entry) and how its weights started."""
        config = self.config
        entry = checkpoint.model_entry(config.arch, config.model, self.evaluator.network.state_dict(),
                                       self.normalization, config=config.to_flat(), epoch=epoch, metrics=metrics,
                                       tta=config.tta, crop=config.crop, val_split=self.val_record)
        entry["init"] = self.init
        return entry


def input_normalization(config: TrainConfig, train_images: np.ndarray) -> tuple[float, float]:
    """(mean, std) on 0..1 pixels, from config.input_scaling (auto: the model's declared one, else the data's)."""
    declared = model_normalization(config.arch, config.model) if config.input_scaling == "auto" else None
    fixed = declared or INPUT_SCALINGS[config.input_scaling]
    return fixed or (float(train_images.mean()) / 255.0, float(train_images.std()) / 255.0)


def _build_network(config: TrainConfig, dev: torch.device, say: bool) -> tuple[torch.nn.Module, str]:
    """The network and how its weights started (recorded in the model file)."""
    network, init = create_initialised_model(config.arch, num_classes=NUM_CLASSES, pretrained=config.pretrained,
                                             **config.model)
    if say and init.startswith("random init:"):
        print(f"{config.arch}: {init}", file=sys.stderr)
    if config.crop:
        try:
            with torch.no_grad():
                network.eval()(torch.zeros(2, 1, config.crop, config.crop))
        except RuntimeError:
            raise UserError(f"option 'crop' ({config.crop}) needs a model that takes other sizes than 48x48; "
                            f"{config.arch} with these settings does not (use pad_crop instead)") from None
    # channels_last speeds convolutions on CUDA and on CPU alike (oneDNN): 25-65% for our CNNs on CPU.
    return network.to(dev).to(memory_format=torch.channels_last), init


def _bf16(precision: str, dev: torch.device) -> bool:
    """Whether training steps run under bf16 autocast: on CUDA, and on CPUs with native bf16 (AVX512-BF16,
    AMX), where it trains our CNNs about twice as fast (benchmarks/cpu_train.sh); evaluation stays fp32."""
    if precision != "auto":
        return precision == "bf16"
    return dev.type == "cuda" or (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _epoch_order(config: TrainConfig, labels: torch.Tensor, epoch_size: int, generator: torch.Generator) -> torch.Tensor:
    if config.imbalance in ("oversample", "both"):
        return oversampled_epoch(labels, NUM_CLASSES, epoch_size, generator)
    return torch.randperm(len(labels), device=labels.device, generator=generator)[:epoch_size]


def _require_splits(data: FERData) -> tuple[Split, Split]:
    if data.train is None or len(data.train) == 0:
        raise UserError(f"{data.name} has no training images; training needs a train split")
    if not data.train.labeled:
        raise UserError(f"{data.name}: the train split has unlabeled images; training needs labels")
    if data.val is None or len(data.val) == 0 or not data.val.labeled:
        raise UserError(f"{data.name} has no labeled validation split (is val_fraction 0?)")
    return data.train, data.val


@torch.no_grad()
def _predict(evaluator: NormalizedModel, images: np.ndarray, dev: torch.device, batch_size: int = 1024) -> np.ndarray:
    evaluator.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size]).to(dev).unsqueeze(1).float()
        # fp32, as evaluate, ensemble.pt and export compute: stored probabilities reproduce on any device.
        chunks.append(evaluator(x).float().cpu())
    return torch.cat(chunks).numpy()


def _make_optimizer(config: TrainConfig, network: torch.nn.Module) -> torch.optim.Optimizer:
    # timm's groups: no weight decay on norm layers and biases (decaying them only fights BatchNorm's scale).
    groups = param_groups_weight_decay(network, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=config.lr)


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
    if config.schedule == "step":  # stepped once per epoch, as the series' ResNets did
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.step_gamma)
    return None


def _test_metrics(probs: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """test_loss and the classification metrics on test; NaN for each where the epoch was not scored on test."""
    if probs is None:
        return dict.fromkeys(["test_loss", *classification_keys("test_")], math.nan)
    return {"test_loss": negative_log_likelihood(probs, labels), **classification_metrics(probs, labels, prefix="test_")}


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
