"""One flat training configuration: what `train --set key=value` and every search trial pass in."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fer_search.errors import UserError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "plateau", "cosine", "onecycle", "step")
IMBALANCE_OPTIONS = ("none", "weighted_loss", "oversample", "both")
# Said where a user asks for `both` (`train --set imbalance=both`, a search space offering it), not on every config.
IMBALANCE_BOTH_NOTE = ("imbalance=both combines class-weighted loss with oversampling; the documented v3 run "
                       "collapsed to predicting only 'disgust' with it. Prefer weighted_loss or oversample.")
TTA_OPTIONS = ("none", "flip", "crops")
SELECTION_METRICS = ("val_acc", "val_macro_f1")
PRECISIONS = ("auto", "bf16", "fp32")
# How 0..255 pixels become the network's input: `auto` is the model's declared scaling (vit: symmetric; a
# ResNet with imagenet_input: unit), else `dataset` (the training set's mean and std); `symmetric` is
# torchvision's Normalize(0.5, 0.5) after ToTensor, i.e. [-1, 1], as the series' 48x48 notebooks fed it;
# `unit` is ToTensor's [0, 1].
INPUT_SCALINGS = {"auto": None, "dataset": None, "symmetric": (0.5, 0.5), "unit": (0.0, 1.0)}

# The documented augmentation list at strength 1.0 (documented-versions.md, deeper_cnn v3).
DOCUMENTED_AUGMENTATION = {
    "hflip": 0.5,  # probability
    "rotate": 15.0,  # +/- degrees
    "translate": 0.10,  # +/- fraction of the side
    "scale": 0.10,  # +/- fraction (90-110%)
    "shear": 10.0,  # +/- degrees
    "brightness": 0.2,  # +/- fraction
    "contrast": 0.2,  # +/- fraction
    "erasing": 0.1,  # probability
}
PROBABILITIES = ("hflip", "erasing")


@dataclass
class TrainConfig:
    arch: str = "simple_cnn"
    model: dict[str, Any] = field(default_factory=dict)  # the architecture's own hyperparameters
    # A local weights file, "timm" for timm's weights from the local cache, or "timm_if_cached": those where the
    # cache has them, else random init (the model file records which).
    pretrained: str | None = None
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    schedule: str = "plateau"
    warmup_epochs: float = 0.0  # cosine only
    warmup_fraction: float = 0.0  # cosine only: warm-up as a share of all steps (the series' ViT: 0.1); not with warmup_epochs
    # cosine only: epochs from the lr's top to its bottom, torch's T_max (attention v3: 10 of 50). As with
    # torch's CosineAnnealingLR, the lr rises again after it, a cosine wave; 0 = one half-wave over the run.
    cosine_t_max: int = 0
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    step_size: int = 10  # step only: the lr is multiplied by step_gamma every step_size epochs (torch's StepLR)
    step_gamma: float = 0.1
    grad_clip: float = 0.0  # largest gradient norm of a step (torch's clip_grad_norm_); 0 = off
    patience: int = 0  # early stopping on the selection metric; 0 = off (off for runs that anneal to their end)
    imbalance: str = "none"
    label_smoothing: float = 0.0
    # Augmentation: `augment` scales the documented list; a field set explicitly overrides it.
    augment: float = 0.0
    hflip: float | None = None
    rotate: float | None = None
    translate: float | None = None
    scale: float | None = None
    shear: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    erasing: float | None = None
    pad_crop: int = 0  # pixels of random pad-and-crop
    crop: int = 0  # train on random crops of this side (e.g. 40, 44), evaluate on the centre crop; 0 = off
    mixup: float = 0.0  # Beta(alpha, alpha) of timm's Mixup; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) of timm's CutMix; 0 = off (with mixup too: one or the other per batch)
    mix_prob: float = 1.0  # share of batches mixed when mixup or cutmix is on
    ema: float = 0.0  # decay of an exponential moving average of the weights (timm ModelEmaV3); 0 = off
    tta: str = "none"  # test-time augmentation used when evaluating
    metric: str = "val_acc"  # selects the best epoch and drives early stopping
    input_scaling: str = "auto"  # INPUT_SCALINGS
    seed: int = 0
    compile: bool = False  # torch.compile (CUDA; slow to start)
    precision: str = "auto"  # training matmuls: bf16 (autocast) on CUDA and on CPUs with native bf16, else fp32
    max_train_images: int = 0  # cap per epoch, for smoke runs; 0 = all
    overfit_images: int = 0  # train AND validate on this many seeded training images (the overfit check); 0 = off

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("imbalance", self.imbalance, IMBALANCE_OPTIONS)
        _check_choice("tta", self.tta, TTA_OPTIONS)
        _check_choice("metric", self.metric, SELECTION_METRICS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("input_scaling", self.input_scaling, tuple(INPUT_SCALINGS))
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"option '{name}' must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UserError(f"option 'lr' must be positive, got {self.lr}")
        if self.crop and not 16 <= self.crop < 48:
            raise UserError(f"option 'crop' must be 0 (off) or a side between 16 and 47 pixels, got {self.crop}")
        if not 0 <= self.ema < 1:
            raise UserError(f"option 'ema' must be in [0, 1) (0 = off; 0.999 is typical), got {self.ema}")
        if self.mixup < 0 or self.cutmix < 0 or not 0 <= self.mix_prob <= 1:
            raise UserError(f"options 'mixup' and 'cutmix' must be >= 0 and 'mix_prob' in [0, 1], got "
                            f"mixup={self.mixup}, cutmix={self.cutmix}, mix_prob={self.mix_prob}")
        if not 0 <= self.warmup_fraction < 1 or (self.warmup_fraction and self.warmup_epochs):
            raise UserError(f"option 'warmup_fraction' must be in [0, 1) and not set with warmup_epochs, "
                            f"got {self.warmup_fraction} (warmup_epochs {self.warmup_epochs})")
        for name in ("cosine_t_max", "overfit_images", "grad_clip"):
            if getattr(self, name) < 0:
                raise UserError(f"option '{name}' must be 0 or more, got {getattr(self, name)}")
        if self.step_size < 1 or not 0 < self.step_gamma <= 1:
            raise UserError(f"options 'step_size' must be at least 1 and 'step_gamma' in (0, 1], got "
                            f"step_size={self.step_size}, step_gamma={self.step_gamma}")

    @property
    def early_stopping(self) -> bool:
        """Patience applies to constant, plateau, step and periodic cosine (cosine_t_max) schedules: one-cycle
        and whole-run cosine schedules must anneal to their end."""
        anneals_once = self.schedule == "onecycle" or (self.schedule == "cosine" and not self.cosine_t_max)
        return self.patience > 0 and not anneals_once

    def augmentation(self) -> dict[str, float]:
        """The effective augmentation parameters (documented list x strength, then overrides)."""
        out = {}
        for name, base in DOCUMENTED_AUGMENTATION.items():
            explicit = getattr(self, name)
            value = explicit if explicit is not None else base * self.augment
            out[name] = min(value, 1.0) if name in PROBABILITIES else value
        out["pad_crop"] = self.pad_crop
        out["crop"] = self.crop
        return out

    def to_flat(self) -> dict[str, Any]:
        """Flat dict: trainer fields plus the model's hyperparameters at top level."""
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k != "model"}
        flat.update(self.model)
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> "TrainConfig":
        """Split flat keys into trainer fields and hyperparameters of `arch` (validated)."""
        from fer_search.models import model_hparams

        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = dict(values)
        arch = values.pop("arch", cls.arch)
        accepted = model_hparams(arch)
        trainer_args: dict[str, Any] = {"arch": arch}
        model_args = dict(values.pop("model", None) or {})
        for key, value in values.items():
            if key in fields:
                trainer_args[key] = _coerce(key, value, fields[key].type)
            elif key in accepted:
                model_args[key] = value
            else:
                known = sorted(set(fields) - {"model"} | set(accepted))
                raise UserError(f"unknown option '{key}' for {arch}; known options: {', '.join(known)}")
        return cls(model=model_args, **trainer_args)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"option '{name}' must be one of {', '.join(choices)}; got '{value}'")


def _coerce(key: str, value: Any, annotation: str) -> Any:
    """Values from the command line or a search space arrive as str / numpy scalars."""
    optional = annotation.endswith(" | None")
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        return None  # "none" unsets an optional field; for a choice field (schedule=none) it is the choice
    kind = annotation.replace(" | None", "")
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        if kind == "float":
            return float(value)
        if kind in ("str", "str | None"):
            return str(value)
    except ValueError:
        raise UserError(f"option '{key}' expects {kind}, got '{value}'") from None
    return value


def parse_set_options(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs -> dict; values are parsed as numbers, booleans or lists where they look so.
    "none" stays the string: it is a documented choice (schedule, imbalance, tta), and `_coerce` turns it
    into None for the fields where None is the value."""
    import ast

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got '{pair}'")
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = {"true": True, "false": False}.get(raw.lower(), raw)
    return out
