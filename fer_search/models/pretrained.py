"""Pretrained weights: local files, and timm's weights from the local cache (never downloaded)."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import huggingface_hub.constants
import timm
import torch
import torch.nn as nn
from timm.models import adapt_input_conv

from fer_search.errors import UserError
from fer_search.models.layers import InputAdapter

logger = logging.getLogger(__name__)

# Prefixes that wrappers add to every key: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# The `pretrained` value for timm's weights where the local cache has them, else random init.
TIMM_IF_CACHED = "timm_if_cached"


class WeightsNotCached(UserError):
    """timm's pretrained weights are not in the local cache (nothing is downloaded)."""


def load_pretrained_file(model: nn.Module, path: str | Path) -> None:
    """Load a state_dict (or a checkpoint dict holding one under "state_dict"/"model") into `model`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pretrained weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways (pickle, zip, EOF); all mean "not weights"
        raise UserError(f"cannot read pretrained weights from {path}: {error}") from error
    state_dict = _unwrap_state_dict(checkpoint, path)
    # A raw timm/torchvision state_dict has no "net." prefix: it belongs to the adapted network.
    if isinstance(model, InputAdapter) and not any(key.startswith("net.") for key in state_dict):
        model = model.net
    load_adapted_state_dict(model, state_dict, source=str(path))


def _unwrap_state_dict(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not (isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values())):
        raise UserError(
            f"{path} holds no state_dict: expected a dict of tensors, "
            "or a checkpoint dict with a 'state_dict' or 'model' entry"
        )
    state_dict = {}
    for key, tensor in checkpoint.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        state_dict[key] = tensor
    return state_dict


def load_adapted_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load what fits: the first conv is adapted to the model's input channels (timm-style: summed
    for 1 channel), other tensors whose shape differs (typically the classifier head) are skipped.
    Raises UserError when less than half of the model's tensors could be loaded."""
    target = model.state_dict()
    first_conv = next((key for key, tensor in target.items() if tensor.ndim == 4), None)
    loaded: dict[str, torch.Tensor] = {}
    mismatched: list[str] = []
    for key, tensor in state_dict.items():
        if key not in target:
            continue
        expected = target[key].shape
        if tensor.shape != expected and key == first_conv and tensor.shape[0] == expected[0] and tensor.shape[2:] == expected[2:]:
            tensor = adapt_input_conv(expected[1], tensor, base_chans=tensor.shape[1])
        if tensor.shape != expected:
            mismatched.append(f"{key} {tuple(tensor.shape)} vs {tuple(expected)}")
            continue
        loaded[key] = tensor
    missing = [key for key in target if key not in loaded]
    unexpected = [key for key in state_dict if key not in target]
    if len(loaded) < len(target) / 2:
        raise UserError(
            f"pretrained weights {source} do not fit this model: only {len(loaded)} of {len(target)} tensors match "
            f"(missing: {_preview(missing)}; unexpected: {_preview(unexpected)}; wrong shape: {_preview(mismatched)}). "
            "Were they saved from another architecture or other hyperparameters?"
        )
    model.load_state_dict(loaded, strict=False)
    if missing or unexpected:
        logger.warning(
            "pretrained weights %s: loaded %d of %d tensors; left at random init: %s; ignored: %s",
            source, len(loaded), len(target), _preview(missing), _preview(unexpected),
        )


def _preview(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


@contextmanager
def _hf_hub_offline() -> Iterator[None]:
    # huggingface_hub reads HF_HUB_OFFLINE at import, so the module constant is switched as well.
    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), huggingface_hub.constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def create_timm_model(timm_name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """timm.create_model, with pretrained weights taken from the local cache only."""
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, **kwargs)
    with _hf_hub_offline():
        try:
            return timm.create_model(timm_name, pretrained=True, **kwargs)
        except OSError as error:  # huggingface_hub's LocalEntryNotFoundError, torch.hub's URLError
            raise WeightsNotCached(
                f"pretrained weights for {timm_name} not found offline; pass a local file with pretrained=PATH"
            ) from error
