"""`export`: ONNX and TorchScript files of a model or an ensemble give the in-process probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.export import check_batch, run_exported
from fer_search.cli import main
from fer_search.models import create_model
from fer_search.inference.predictor import load_predictor
from fer_search.training import checkpoint

TINY = {"widths": (8, 16), "kernel_size": 3, "fc_width": 32}


def _model_entry(seed: int) -> dict:
    torch.manual_seed(seed)
    network = create_model("simple_cnn", **TINY)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained model has
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return checkpoint.model_entry("simple_cnn", TINY, network.state_dict(), (0.5, 0.25))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    single = checkpoint.save(_model_entry(0), folder / "model.pt")
    members = [_model_entry(1), _model_entry(2)]
    ensemble = checkpoint.save(checkpoint.ensemble_entry(members, [0.3, 0.7], 1.7, tta="flip"), folder / "ensemble.pt")
    return single, ensemble


@pytest.mark.parametrize("fmt,which", [("onnx", 1), ("torchscript", 1), ("torchscript", 0)])
def test_export_matches_in_process(model_files, tmp_path, capsys, fmt, which):
    source = model_files[which]
    out = tmp_path / f"exported.{fmt}"
    assert main(["export", str(source), "--format", fmt, "--out", str(out)]) == 0
    assert "max difference" in capsys.readouterr().out
    pixels = check_batch(batch=7, seed=3)  # neither the traced batch nor the export's own check batch
    with torch.no_grad():
        expected = load_predictor(source)(pixels).numpy()
    got = run_exported(out, fmt, pixels.numpy())
    assert got.shape == (7, 7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_default_output_name(model_files, capsys):
    single, _ = model_files
    assert main(["export", str(single), "--format", "torchscript"]) == 0
    assert (single.parent / "model.torchscript.pt").is_file()


def test_export_of_a_non_model_file_is_a_clear_error(tmp_path, capsys):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("hello")
    assert main(["export", str(bogus), "--format", "onnx"]) == 2
    assert "not a fer_search model or ensemble file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "onnx"]) == 2
    assert "no such model file" in capsys.readouterr().err
