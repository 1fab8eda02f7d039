"""timm-style model registry: factories register under their function name, grouped by module (family).

A factory has the signature `name(num_classes=7, in_chans=1, *, hparam=default, ...)`. Factories
that can load timm's pretrained weights also take `pretrained: bool` before the `*`. A family that was
documented with its own input normalisation declares it (`@register_model(normalization=(mean, std))`, or
a function of the model's hyperparameters returning that or None); the trainer's input_scaling=auto takes
it, and the training set's statistics for the others.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.pretrained import TIMM_IF_CACHED, WeightsNotCached, load_pretrained_file

ModelFactory = Callable[..., nn.Module]

_factories: dict[str, ModelFactory] = {}
_families: dict[str, str] = {}
Normalization = tuple[float, float] | Callable[[dict[str, Any]], tuple[float, float] | None]
_normalizations: dict[str, Normalization] = {}
# Arguments every factory shares; everything else in its signature is a model hyperparameter.
_COMMON_ARGS = ("num_classes", "in_chans", "pretrained")


def register_model(factory: ModelFactory | None = None, *, normalization: Normalization | None = None):
    """Register `factory` under its function name; its family is the name of the module defining it.

    Used bare (`@register_model`) or with the (mean, std) on 0..1 pixels the model's input must be
    normalised with (`@register_model(normalization=(0.5, 0.5))`).
    """

    def register(factory: ModelFactory) -> ModelFactory:
        name = factory.__name__
        if name in _factories:
            raise ValueError(f"model {name!r} is registered twice ({_families[name]} and {factory.__module__})")
        _factories[name] = factory
        _families[name] = factory.__module__.rsplit(".", 1)[-1]
        if normalization is not None:
            _normalizations[name] = normalization
        return factory

    return register(factory) if factory is not None else register


def list_models(family: str | None = None) -> list[str]:
    if family is not None and family not in _families.values():
        raise UserError(f"unknown model family {family!r}; known families: {', '.join(sorted(set(_families.values())))}")
    return sorted(name for name, fam in _families.items() if family is None or fam == family)


def _factory(name: str) -> ModelFactory:
    if name not in _factories:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _factories[name]


def model_family(name: str) -> str:
    _factory(name)
    return _families[name]


def model_normalization(name: str, hparams: dict[str, Any] | None = None) -> tuple[float, float] | None:
    """The (mean, std) on 0..1 pixels `name` (with these hyperparameters) was documented with, or None: use
    the training set's."""
    _factory(name)
    declared = _normalizations.get(name)
    if callable(declared):
        declared = declared(dict(hparams or {}))
    return None if declared is None else (float(declared[0]), float(declared[1]))


def model_hparams(name: str) -> dict[str, Any]:
    """The hyperparameters `name` accepts, with their defaults."""
    parameters = inspect.signature(_factory(name)).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in _COMMON_ARGS}


def create_model(
    name: str,
    num_classes: int = 7,
    in_chans: int = 1,
    pretrained: str | Path | None = None,
    **hparams: Any,
) -> nn.Module:
    """Build model `name` for (B, in_chans, 48, 48) input and `num_classes` logits.

    pretrained: None (random init), a local weights file (a state_dict, or a checkpoint dict holding
    one under "state_dict" or "model"), "timm" for timm's weights from the local cache only, or
    "timm_if_cached": those where the cache has them, else random init (create_initialised_model says which).
    """
    return create_initialised_model(name, num_classes, in_chans, pretrained, **hparams)[0]


def create_initialised_model(
    name: str,
    num_classes: int = 7,
    in_chans: int = 1,
    pretrained: str | Path | None = None,
    **hparams: Any,
) -> tuple[nn.Module, str]:
    """create_model, and how its weights started, in words (a model file records it)."""
    factory = _factory(name)
    accepted = model_hparams(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise UserError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    if pretrained in ("timm", TIMM_IF_CACHED):
        if "pretrained" not in inspect.signature(factory).parameters:
            raise UserError(f"model {name!r} has no timm pretrained weights; pass a local file with pretrained=PATH")
        try:
            model = factory(num_classes=num_classes, in_chans=in_chans, pretrained=True, **hparams)
            return model, "timm's pretrained weights (local cache)"
        except WeightsNotCached as missing:
            if pretrained == "timm":
                raise
            return factory(num_classes=num_classes, in_chans=in_chans, **hparams), f"random init: {missing}"
    model = factory(num_classes=num_classes, in_chans=in_chans, **hparams)
    if pretrained is None:
        return model, "random init"
    load_pretrained_file(model, pretrained)
    return model, f"pretrained weights from {pretrained}"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe_models() -> list[dict[str, Any]]:
    """One row per registered model, parameter count at default hyperparameters (for `fer_search models`)."""
    return [
        {
            "name": name,
            "family": model_family(name),
            "parameters": count_parameters(create_model(name)),
            "hparams": model_hparams(name),
        }
        for name in list_models()
    ]
