"""Shared fixtures. `tiny_search` runs one small real search (Ray Tune + Optuna + ASHA) per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every Ray node and driver of the tests on 127.0.0.1: Ray 2.60 on Linux swaps in the machine's network address
# unless this is set before Ray is imported (test_cluster.py's nodes and drivers inherit it).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

SPACES = Path(__file__).parent / "spaces"
TINY_SEARCH = {"num_samples": 6, "max_epochs": 3, "grace_period": 1, "reduction_factor": 2}


@pytest.fixture(scope="session")
def tiny_search_data():
    """The tiny search's data: make_synthetic(n_train=600, n_test=200, seed=0) (val = 60 of the 600)."""
    from fer_search.data import make_synthetic

    return make_synthetic(n_train=600, n_test=200, seed=0)


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory, tiny_search_data):
    """(storage path, experiment name) of a finished search on tiny_search_data: 6 trials of two families
    (tests/spaces/tiny_*.yaml), up to 3 epochs (the deeper_cnn point: its own 4), ASHA grace 1; about a
    minute on 2 CPUs.

    Trials 0-2 are the documented-style points (simple_cnn good, deeper_cnn good, simple_cnn collapse),
    the rest TPE. Every trial has best/model.pt, best/probs.npz and best/summary.json; "collapse"
    (weighted loss + oversampling) is stopped early by ASHA.
    """
    from fer_search.search.ray_tune import run_search
    from fer_search.search.settings import SearchSettings, local_cpu_count
    from search_spaces import load_space

    storage = tmp_path_factory.mktemp("search")
    spaces = [load_space(str(SPACES / "tiny_simple_cnn.yaml")), load_space(str(SPACES / "tiny_deeper_cnn.yaml"))]
    # Two trials at a time whatever the machine: the points then reach ASHA's first rung in a fixed order.
    settings = SearchSettings(storage=str(storage), name="tiny", cpus=min(2, local_cpu_count()), **TINY_SEARCH)
    run_search(spaces, tiny_search_data, settings)
    return str(storage), "tiny"


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """model.pt of a tiny simple_cnn trained for one epoch on 600 synthetic faces (a few seconds on CPU)."""
    from fer_search.data import make_synthetic
    from fer_search.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_model")
    config = TrainConfig.from_flat({"arch": "simple_cnn", "widths": (8, 16), "kernel_size": 3, "fc_width": 32,
                                    "epochs": 1, "batch_size": 32})
    train(config, make_synthetic(n_train=600, n_test=100, seed=2), device="cpu", out_dir=out, progress=False)
    return out / "model.pt"
