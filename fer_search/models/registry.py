"""timm-style model registry: factories register under their function name, grouped by module (family).

A factory has the signature `name(num_classes=7, in_chans=1, *, hparam=default, ...)`. Factories
that can load timm's pretrained weights also take `pretrained: bool` before the `*`. A family that was
documented with its own input normalisation declares it (`@register_model(normalization=(mean, std))`);
the others are normalised with the training set's statistics.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from fer_search.errors import UserError
from fer_search.models.pretrained import load_pretrained_file

ModelFactory = Callable[..., nn.Module]

_factories: dict[str, ModelFactory] = {}
_families: dict[str, str] = {}
_normalizations: dict[str, tuple[float, float]] = {}
# Arguments every factory shares; everything else in its signature is a model hyperparameter.
_COMMON_ARGS = ("num_classes", "in_chans", "pretrained")


def register_model(factory: ModelFactory | None = None, *, normalization: tuple[float, float] | None = None):
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
            _normalizations[name] = (float(normalization[0]), float(normalization[1]))
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


def model_normalization(name: str) -> tuple[float, float] | None:
    """The (mean, std) on 0..1 pixels `name` was documented with, or None: use the training set's."""
    _factory(name)
    return _normalizations.get(name)


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
    one under "state_dict" or "model"), or "timm" for timm's weights from the local cache only.
    """
    factory = _factory(name)
    accepted = model_hparams(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise UserError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    if pretrained == "timm":
        if "pretrained" not in inspect.signature(factory).parameters:
            raise UserError(f"model {name!r} has no timm pretrained weights; pass a local file with pretrained=PATH")
        return factory(num_classes=num_classes, in_chans=in_chans, pretrained=True, **hparams)
    model = factory(num_classes=num_classes, in_chans=in_chans, **hparams)
    if pretrained is not None:
        load_pretrained_file(model, pretrained)
    return model


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
