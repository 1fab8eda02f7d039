"""An exported `.onnx` file (analysis/export.py) run with onnxruntime: a deployment needs no PyTorch.

The exported graph is the whole `Predictor`: float pixels (B, 1, 48, 48) in 0..255 in, with the
normalisation, test-time views, vote and temperature inside, so raw pixels are all it is fed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fer_search.errors import UserError


class OnnxPredictor:
    """`predict_proba(images uint8 (N, 48, 48)) -> (N, classes)`, like `Predictor`, for an .onnx file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such model file")
        try:
            import onnxruntime
        except ImportError:
            raise UserError("running an ONNX model needs onnxruntime; install it with: "
                            "pip install 'fer_search[export]'") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
            raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
        class_names = self.session.get_modelmeta().custom_metadata_map.get("class_names")
        if class_names is None:
            raise UserError(f"{path}: no class names in its metadata; export it with `python -m fer_search export`")
        self.class_names = json.loads(class_names)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """float pixels (B, 1, 48, 48) in 0..255 -> probabilities (B, classes)."""
        return self.session.run(None, {"pixels": pixels.astype(np.float32)})[0]

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        chunks = [self(images[start:start + batch_size, None]) for start in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.class_names)), dtype=np.float32)

