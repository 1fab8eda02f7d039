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
from fer_search.models import create_initialised_model, model_normalization
from fer_search.progress import progress_bar
from fer_search.training import checkpoint
from fer_search.training.config import INPUT_SCALINGS, TrainConfig
from fer_search.training.imbalance import oversampled_epoch
from fer_search.training.learner import Criterion, Learner
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


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: every later step would only spread it."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training diverged in epoch {epoch} (train loss {loss}); try a lower lr")
        self.epoch = epoch
        self.loss = loss


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
    dev = resolve_device(device)
    if config.overfit_images:
        data = data.overfit_check(config.overfit_images, config.seed)
    train_split, val_split = _require_splits(data)
    test_split = data.test if data.test is not None and len(data.test) else None
    torch.manual_seed(config.seed)  # dropout and weight init
    np.random.seed(config.seed)  # timm's Mixup/CutMix draw from numpy's global generator
    generator = torch.Generator(device=dev).manual_seed(config.seed)

    # Data on the device, once, as uint8.
    images = torch.as_tensor(train_split.images).to(dev)
    labels = torch.as_tensor(train_split.labels).to(dev)
    mean, std = input_normalization(config, train_split.images)

    network, init = _build_network(config, dev, say=progress)
    ema = ModelEmaV3(network, decay=config.ema, use_warmup=True) if config.ema > 0 else None
    scored = ema.module if ema is not None else network  # the weights that are evaluated, kept and saved
    evaluator = NormalizedModel(scored, mean, std, config.tta, config.crop)
    epoch_size = len(images) if config.max_train_images <= 0 else min(config.max_train_images, len(images))
    steps_per_epoch = max(1, epoch_size // config.batch_size)  # drop the ragged last batch: BatchNorm dislikes size 1
    optimizer = _make_optimizer(config, network)
    scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
    learner = Learner(network, torch.compile(network) if config.compile else network, ema, optimizer, scheduler,
                      config.schedule in ("cosine", "onecycle"), Criterion.for_config(config, train_split.labels, dev),
                      config.augmentation(), mean * 255.0, std * 255.0, generator, _bf16(config.precision, dev),
                      grad_clip=config.grad_clip)

    progress_state = Progress()
    if resume is not None:
        progress_state = _restore(resume, learner)
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=(config.epochs - progress_state.epoch) * steps_per_epoch, enabled=progress, unit="step",
               desc=config.arch, dynamic_ncols=True)
    stop = False
    for epoch in range(progress_state.epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        order = _epoch_order(config, labels, epoch_size, generator)
        train_loss, train_acc, seen = learner.epoch(images, labels, order, config.batch_size, steps_per_epoch, bar)
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            bar.close()
            raise TrainingDiverged(epoch, train_loss)

        val_probs = _predict(evaluator, val_split.images, dev)
        metrics: dict[str, float] = {
            "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": negative_log_likelihood(val_probs, val_split.labels),
            **classification_metrics(val_probs, val_split.labels, prefix="val_"),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if config.schedule == "plateau":
            scheduler.step(metrics[config.metric])
        elif config.schedule == "step":
            scheduler.step()

        best = progress_state.best
        is_best = keep == "last" or best is None or metrics[config.metric] > best.metrics[config.metric]
        test_probs = None
        if is_best and test_split is not None:
            test_probs = _predict(evaluator, test_split.images, dev)
            if test_split.labeled:
                metrics["test_loss"] = negative_log_likelihood(test_probs, test_split.labels)
                metrics.update(classification_metrics(test_probs, test_split.labels, prefix="test_"))
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["images_per_s"] = seen / train_seconds
        if is_best:
            entry = checkpoint.model_entry(config.arch, config.model, scored.state_dict(), (mean, std),
                                           config=config.to_flat(), epoch=epoch, metrics=metrics, tta=config.tta,
                                           crop=config.crop)
            entry["init"] = init
            progress_state.best = BestSnapshot(epoch, dict(metrics), entry, val_probs, test_probs)
        progress_state.record(epoch, metrics, is_best)
        stop = config.early_stopping and progress_state.bad_epochs >= config.patience
        finished_by = "early_stopping" if stop else "max_epochs" if epoch == config.epochs else None

        bar.set_postfix(epoch=epoch, val_acc=f"{metrics['val_acc']:.3f}",
                        best=f"{progress_state.best.metrics['val_acc']:.3f}")
        if progress:
            bar.write(_epoch_line(metrics, is_best))
        if out_path is not None:
            _write_history(out_path / "metrics.csv", progress_state.history)
            if is_best:
                checkpoint.save(progress_state.best.entry, out_path / "model.pt")
        if on_epoch is not None:
            on_epoch(metrics, EpochState(epoch, metrics, is_best, progress_state.best,
                                         resume_state=lambda: _resume_state(learner, progress_state),
                                         finished_by=finished_by))
        if stop:
            break
    bar.close()
    return TrainResult(best=progress_state.best, history=progress_state.history,
                       finished_by="early_stopping" if stop else "max_epochs")


@dataclass
class Progress:
    """Where a run stands after its last finished epoch (all of it goes into the resume state)."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: BestSnapshot | None = None
    bad_epochs: int = 0  # epochs since the best one, for early stopping

    def record(self, epoch: int, metrics: dict[str, float], is_best: bool) -> None:
        self.epoch = epoch
        self.history.append(metrics)
        self.bad_epochs = 0 if is_best else self.bad_epochs + 1


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


def _resume_state(learner: Learner, run: Progress) -> dict[str, Any]:
    best = run.best
    numpy_rng = np.random.get_state()
    return {
        "model": {k: v.detach().cpu().clone() for k, v in learner.network.state_dict().items()},
        "ema": None if learner.ema is None else {k: v.detach().cpu().clone() for k, v in learner.ema.state_dict().items()},
        "optimizer": learner.optimizer.state_dict(),
        "scheduler": learner.scheduler.state_dict() if learner.scheduler is not None else None,
        "steps_done": learner.steps_done,
        "generator": learner.generator.get_state().cpu(),
        "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
        "cuda_rng": torch.cuda.get_rng_state() if learner.generator.device.type == "cuda" else None,
        "numpy_rng": {"keys": torch.from_numpy(numpy_rng[1].astype(np.int64)), "pos": int(numpy_rng[2]),
                      "has_gauss": int(numpy_rng[3]), "gauss": float(numpy_rng[4])},  # timm's Mixup
        "epoch": run.epoch,
        "history": list(run.history),
        "bad_epochs": run.bad_epochs,
        "best": {
            "epoch": best.epoch,
            "metrics": best.metrics,
            "entry": best.entry,
            "val_probs": torch.from_numpy(best.val_probs),
            "test_probs": None if best.test_probs is None else torch.from_numpy(best.test_probs),
        },
    }


def _restore(state: dict[str, Any], learner: Learner) -> Progress:
    learner.network.load_state_dict(state["model"])
    if learner.ema is not None:
        learner.ema.load_state_dict(state["ema"])
    learner.optimizer.load_state_dict(state["optimizer"])
    if learner.scheduler is not None:
        learner.scheduler.load_state_dict(state["scheduler"])
    learner.steps_done = state["steps_done"]
    generator = learner.generator
    generator.set_state(state["generator"].to(generator.get_state().device))
    torch.set_rng_state(state["torch_rng"])
    if generator.device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"])
    rng = state["numpy_rng"]
    np.random.set_state(("MT19937", rng["keys"].numpy().astype(np.uint32), rng["pos"], rng["has_gauss"], rng["gauss"]))
    best = state["best"]
    test = best["test_probs"]
    snapshot = BestSnapshot(best["epoch"], best["metrics"], best["entry"], best["val_probs"].numpy(),
                            None if test is None else test.numpy())
    return Progress(state["epoch"], list(state["history"]), snapshot, state["bad_epochs"])


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
