"""`export MODEL_FILE --format onnx|torchscript`: one deployable file for a model or an ensemble.

What is exported is the `Predictor` module itself: float pixels (B, 1, 48, 48) in 0..255 in,
class probabilities (B, 7) out, with normalisation, test-time views, the vote and the temperature
inside. Each export is checked against the in-process predictor before it is reported as written.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from fer_search.errors import UserError
from fer_search.inference.onnx_model import OnnxPredictor
from fer_search.inference.predictor import load_predictor

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-4  # max absolute difference in probability


def default_output(model_file: str | Path, fmt: str) -> Path:
    model_file = Path(model_file)
    return model_file.with_name(model_file.name.removesuffix(".pt") + FORMATS[fmt])


def export(model_file: str | Path, fmt: str, out: str | Path | None = None) -> tuple[Path, float]:
    """-> (written file, max |difference| from the in-process predictor on a check batch)."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
    predictor = load_predictor(model_file, device="cpu")
    out = Path(out) if out is not None else default_output(model_file, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = check_batch(batch=2)
    # TorchScript is deprecated upstream (FutureWarning) but asked for by name, and tracer warnings
    # about Python constants are settled by the numeric check below, so neither helps the user.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if fmt == "torchscript":
            _export_torchscript(predictor, example, out)
        else:
            _export_onnx(predictor, example, out)
    check = check_batch(batch=5)  # another batch size than traced with: the batch axis must stay dynamic
    with torch.no_grad():
        expected = predictor(check).numpy()
    difference = float(np.abs(run_exported(out, fmt, check.numpy()) - expected).max())
    if difference > TOLERANCE:
        raise UserError(f"{out}: the exported model differs from the in-process one by {difference:.2e} "
                        f"(tolerance {TOLERANCE:.0e}); please report this with the model's architecture")
    return out, difference


def check_batch(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 1, 48, 48), generator=generator).float()


def run_exported(path: Path, fmt: str, pixels: np.ndarray) -> np.ndarray:
    """Run an exported file the way a deployment would: onnxruntime, or torch.jit.load."""
    if fmt == "onnx":
        return OnnxPredictor(path)(pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(pixels)).numpy()


def _export_torchscript(predictor, example: torch.Tensor, out: Path) -> None:
    # Tracing, not scripting: model families (timm ViTs among them) use Python that TorchScript's
    # compiler rejects, while the traced graph of an eval-mode network is exactly its computation.
    traced = torch.jit.trace(predictor, example, check_trace=False)
    torch.jit.save(traced, str(out), _extra_files={"class_names.json": json.dumps(predictor.class_names)})


def _export_onnx(predictor, example: torch.Tensor, out: Path) -> None:
    try:
        program = torch.onnx.export(
            predictor, (example,), input_names=["pixels"], output_names=["probabilities"],
            dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False,
        )
    except ImportError as exc:
        raise UserError(f"ONNX export needs the packages onnx and onnxscript ({exc}); "
                        "install them with: pip install 'fer_search[export]'") from None
    program.model.metadata_props["class_names"] = json.dumps(predictor.class_names)
    program.save(str(out))
