"""Trained models on real photos and videos: face detection, ONNX models, the `predict` command's work.

Nothing here imports PyTorch unless a PyTorch model file is loaded, so an exported `.onnx` model
runs where only onnxruntime is installed.
"""
from __future__ import annotations

from pathlib import Path

from fer_search.inference.onnx_model import OnnxPredictor


def load_model_file(path: str | Path, device: str = "auto"):
    """A model file, an ensemble file or an exported .onnx file -> an object with `predict_proba` and
    `class_names`. PyTorch is imported only for the first two."""
    if Path(path).suffix.lower() == ".onnx":
        return OnnxPredictor(path)
    from fer_search.inference.predictor import load_predictor
    from fer_search.training.trainer import resolve_device

    return load_predictor(path, device=str(resolve_device(device)))
