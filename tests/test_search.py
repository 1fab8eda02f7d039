"""The search on CPU with synthetic data: a tiny real search (conftest.tiny_search), its files, and the
command line's checks. The resume test (a killed driver) is in test_search_resume.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from fer_search.cli import main
from fer_search.data.types import CLASS_NAMES
from fer_search.errors import UserError
from fer_search.search import layout
from fer_search.search.settings import SearchSettings, plan_resources
from fer_search.inference.predictor import load_predictor
from fer_search.training import checkpoint
from search_spaces import load_space

SPACES = Path(__file__).parent / "spaces"


@pytest.fixture(scope="module")
def trials(tiny_search):
    return layout.list_trials(*tiny_search)


def test_documented_points_run_first(trials):
    assert len(trials) == 6
    assert [(t.family, t.point) for t in trials[:3]] == [
        ("simple_cnn", "good"), ("deeper_cnn", "good"), ("simple_cnn", "collapse")]
    assert all(t.point == "tpe" for t in trials[3:])
    assert trials[2].config["imbalance"] == "both" and trials[2].config["lr"] == 0.003
    # The run's --max-epochs (3) sets every trial's epochs, except a point's own (deeper_cnn good: 4),
    # which neither it nor ASHA (max_t 3) cuts short.
    documented = trials[1]
    assert (documented.config["epochs"], documented.epochs, documented.finished_by) == (4, 4, "max_epochs")
    assert all(t.config["epochs"] == 3 and t.epochs <= 3 for t in trials if t is not documented)


def test_asha_stops_are_pruned_in_optuna(tiny_search, trials):
    from fer_search.search.study import load_study  # from the experiment's database, not Ray's searcher pickle

    statuses = {t.status for t in trials}
    assert statuses <= {layout.COMPLETED, layout.STOPPED}
    assert trials[2].status == layout.STOPPED and trials[2].epochs < 3  # the collapsing point
    assert layout.COMPLETED in statuses
    study = load_study(Path(*tiny_search))
    states = {t.number: t.state.name for t in study.trials}
    for trial in trials:
        expected = "COMPLETE" if trial.status == layout.COMPLETED else "PRUNED"
        assert states[trial.number] == expected, trial.name
    pruned = study.trials[2]
    assert pruned.intermediate_values and pruned.value == pruned.intermediate_values[max(pruned.intermediate_values)]
    # A documented value outside the TPE ranges (imbalance=both) runs, but is no TPE observation.
    assert "simple_cnn.imbalance" not in pruned.params and pruned.params["simple_cnn.lr"] == 0.003


def test_tensorboard_files_have_the_expected_tags(trials):
    for trial in trials:
        events = EventAccumulator(str(trial.path))
        events.Reload()
        tags = events.Tags()
        expected = {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "macro_f1/val", "lr",
                    "best/val_acc"} | {f"recall/{name}" for name in CLASS_NAMES}
        assert expected <= set(tags["scalars"]), trial.name
        assert len(events.Scalars("accuracy/val")) == trial.epochs
        assert tags["images"] == ["confusion_matrix/val"]
        hparams = events.PluginTagToContent("hparams")
        assert set(hparams) == {"_hparams_/experiment", "_hparams_/session_start_info"}
        session = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
        assert session.hparams["lr"].number_value == trial.config["lr"]
        assert session.hparams["family"].string_value == trial.family
    # Ray's own TensorBoard logger is off: no ray/tune/* tags beside ours.
    assert not [t for t in EventAccumulator(str(trials[0].path)).Reload().Tags()["scalars"] if t.startswith("ray")]


def test_every_trial_keeps_its_best_epoch(trials, tiny_search_data):
    val = tiny_search_data.val
    for trial in trials:
        assert len(list(trial.path.glob("checkpoint_*"))) <= 2, trial.name  # num_to_keep=2
        summary = trial.summary()
        assert summary["family"] == trial.family and summary["point"] == trial.point
        assert (summary.get("finished_by") == "max_epochs") == (trial.status == layout.COMPLETED)
        entry = checkpoint.load(trial.model_path)
        assert entry["epoch"] == summary["best_epoch"] and entry["arch"] == trial.config["arch"]
        probs = np.load(trial.probs_path)
        assert probs["val_probs"].shape == (len(val), 7) and probs["test_probs"].shape == (200, 7)
        np.testing.assert_array_equal(probs["val_labels"], val.labels)
        # The stored probabilities are the model file's own predictions.
        predicted = load_predictor(trial.model_path, device="cpu").predict_proba(val.images)
        np.testing.assert_allclose(predicted, probs["val_probs"], atol=1e-4)
        assert summary["metrics"]["val_acc"] == pytest.approx((probs["val_probs"].argmax(1) == val.labels).mean())
        assert not trial.epoch_table.empty and len(trial.epoch_table) == trial.epochs


def test_layout_lists_the_experiment(tiny_search):
    storage, name = tiny_search
    assert layout.list_experiments(storage) == [name]
    with pytest.raises(UserError, match="no experiment 'nope'.*found: tiny"):
        layout.list_trials(storage, "nope")


def test_gpu_mismatch_fails_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("fer_search.search.settings.local_gpu_count", lambda: 0)
    code = main(["run", "simple_cnn", "--data", "synthetic", "--gpus", "1", "--storage", str(tmp_path)])
    assert code == 2
    assert "asked for 1 GPU(s), found 0; use --gpus 0 to run on CPU" in capsys.readouterr().err


def test_resources_share_gpus_by_family():
    cnn, resnet, vit = load_space("simple_cnn"), load_space("resnet"), load_space("vit")
    plan = plan_resources(SearchSettings("/x", "n"), [cnn], cpus_found=16, gpus_found=1)
    assert plan.gpus_per_trial == {"simple_cnn": 0.25} and plan.concurrency == 4
    plan = plan_resources(SearchSettings("/x", "n"), [cnn, resnet, vit], cpus_found=16, gpus_found=2)
    assert plan.gpus_per_trial == {"simple_cnn": 0.25, "resnet": 0.5, "vit": 1.0} and plan.concurrency == 8
    plan = plan_resources(SearchSettings("/x", "n", gpus_per_trial=0.125), [cnn], cpus_found=4, gpus_found=1)
    assert plan.concurrency == 4  # CPUs bound it
    plan = plan_resources(SearchSettings("/x", "n", gpus=0), [vit], cpus_found=2, gpus_found=1)
    assert plan.gpus_per_trial == {"vit": 0.0} and plan.concurrency == 2
    with pytest.raises(UserError, match=r"a simple_cnn trial asks for 1.5 GPUs: trials train on one GPU"):
        plan_resources(SearchSettings("/x", "n", gpus_per_trial=1.5), [cnn], cpus_found=4, gpus_found=2)
    with pytest.warns(UserWarning, match="puts 4 ViT trials on one GPU"):
        plan_resources(SearchSettings("/x", "n", gpus_per_trial=0.25), [vit], cpus_found=4, gpus_found=1)


def test_trials_can_share_a_cpu_core():
    """--cpus-per-trial below 1: more one-thread trials than cores (a CPU search's trials all in one wave)."""
    cnn = load_space("simple_cnn")
    assert plan_resources(SearchSettings("/x", "n", cpus_per_trial=0.66), [cnn], cpus_found=2,
                          gpus_found=0).concurrency == 3
    assert plan_resources(SearchSettings("/x", "n", cpus_per_trial=0.5), [cnn], cpus_found=2,
                          gpus_found=0).concurrency == 4


def test_a_trial_no_node_can_hold_fails_naming_the_node_sizes():
    from fer_search.search.cluster_checks import Node, check_fits_a_node

    plan = plan_resources(SearchSettings("/x", "n", cpus_per_trial=4), [load_space("resnet")], cpus_found=8,
                          gpus_found=2)
    # 8 CPUs and 2 GPUs in all, but not 4 CPUs beside a GPU
    nodes = [Node("a" * 56, "10.0.0.1", 2, 1), Node("b" * 56, "10.0.0.2", 6, 0)]
    with pytest.raises(UserError, match=r"no node can hold a resnet trial \(4 CPU, 0.5 GPU\); the nodes have: "
                                        r"10.0.0.1 \(aaaaaaaa\): 2 CPU, 1 GPU; 10.0.0.2 \(bbbbbbbb\): 6 CPU, 0 GPU. "
                                        r"Lower --cpus-per-trial or --gpus-per-trial, or add a bigger node"):
        check_fits_a_node(plan, nodes)
    check_fits_a_node(plan, nodes + [Node("c" * 56, "10.0.0.3", 4, 1)])


def test_what_experiments_saved_before_the_split_pickled_by_name_still_unpickles():
    """tuner.pkl and the search generator's state of an experiment saved before ray_tune.py was split into three
    files name these as fer_search.search.ray_tune.<name>; --resume unpickles them by that name."""
    import pickle

    from fer_search.search import ray_tune

    for name in ("SessionSearchGenerator", "TruthfulOptunaSearch", "BudgetASHA", "ConsoleReporter", "BudgetLedger",
                 "HeaderKeepingCSVLogger", "SeriesWandbCallback", "SearchStopper", "trial_name", "_trainable",
                 "_trial_resources"):
        reference = b"cfer_search.search.ray_tune\n" + name.encode() + b"\n."  # pickle's GLOBAL opcode, then STOP
        assert pickle.loads(reference) is getattr(ray_tune, name)
    # Saved after the split, under the searcher's earlier name:
    reference = b"cfer_search.search.ray_adaptations\nTruthfulOptunaSearch\n."
    assert pickle.loads(reference) is ray_tune.ExperimentOptunaSearch


def test_a_trial_without_a_gpu_share_trains_on_cpu_and_never_touches_cuda(monkeypatch):
    import torch

    from fer_search.search.ray_tune import _trial_device

    def touched(*args, **kwargs):
        raise AssertionError("a CPU trial touched CUDA")

    for name in ("is_available", "device_count", "init", "set_per_process_memory_fraction"):
        monkeypatch.setattr(torch.cuda, name, touched)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # a GPU machine: Ray 2.60 leaves them visible
    assert _trial_device(0.0) == "cpu"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_a_trial_with_a_gpu_share_uses_cuda_capped_to_its_share_or_fails(monkeypatch):
    import torch

    from fer_search.search.ray_tune import _trial_device

    fractions = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", fractions.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _trial_device(0.25) == "cuda" and fractions == [0.25]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="Ray gave this trial 0.5 GPU, but CUDA is not usable on"):
        _trial_device(0.5)  # never a silent fall-back to CPU


@pytest.mark.parametrize("argv, message", [
    (["run", "cnn"], "unknown family cnn; families: simple_cnn, deeper_cnn"),
    (["run"], "name a family to search"),
    (["run", "simple_cnn", "--data", "/no/such/fer2013"], "data path /no/such/fer2013 does not exist"),
    (["run", "simple_cnn", "--storage", "/proc/fer_search_runs"],
     "storage folder /proc/fer_search_runs is not writable"),
    (["run", "simple_cnn", "--max-epochs", "0"], "--max-epochs must be at least 1"),
    (["run", "simple_cnn", "--reduction-factor", "1"], "--reduction-factor must be at least 2, got 1"),
    (["run", "simple_cnn", "--cpus-per-trial", "0"], "--cpus-per-trial must be more than 0, got 0"),
    (["run", "simple_cnn", "--gpus", "-1"], "--gpus must be at least 0, got -1"),
    (["run", "simple_cnn", "--gpus-per-trial", "0"], "--gpus-per-trial must be more than 0, got 0"),
    (["run", "simple_cnn", "--time-budget", "-5"], "--time-budget must be more than 0, got -5"),
])
def test_run_user_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_space_file_names_the_entry(tmp_path, capsys):
    space = tmp_path / "mine.yaml"
    text = (SPACES / "tiny_simple_cnn.yaml").read_text()
    space.write_text(text.replace("{log: [0.001, 0.005]}", "{log: [0, 0.005]}"))
    assert main(["run", "--space", str(space), "--data", "synthetic", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"space {space}: params.lr: 'log' needs [low, high] with low < high and low > 0, got [0, 0.005]" in err


def test_resume_without_an_experiment(tmp_path, capsys):
    assert main(["run", "simple_cnn", "--data", "synthetic", "--storage", str(tmp_path), "--resume"]) == 2
    assert "nothing to resume under" in capsys.readouterr().err


def test_wandb_without_a_login_gives_a_hint(tmp_path, capsys, monkeypatch):
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no stored login
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert main(["run", "simple_cnn", "--data", "synthetic", "--storage", str(tmp_path), "--wandb"]) == 2
    assert "WANDB_MODE=offline" in capsys.readouterr().err


def test_spaces_command(capsys):
    assert main(["spaces"]) == 0
    listing = capsys.readouterr().out
    assert "attention_cnn  4 documented point(s): v1, v2, v3, v4" in listing
    assert main(["spaces", "resnet"]) == 0
    shown = capsys.readouterr().out
    assert "resnet18_config1" in shown and "momentum" in shown and "if optimizer = sgd" in shown
    # arch is a TPE choice and the documented points set their own patience: neither is "fixed".
    assert "fixed for every trial: -" in shown and "ranges change: arch=resnet18, patience=5" in shown
    assert main(["spaces", "simple_cnn"]) == 0
    shown = capsys.readouterr().out
    assert "patience=5" in shown.split("defaults that points or TPE ranges change:")[1].splitlines()[0]
    assert json.dumps([32, 64]) in (main(["spaces", "simple_cnn"]) == 0 and capsys.readouterr().out)


def test_a_run_argument_error_imports_neither_torch_nor_ray():
    """One-line errors must come at once: torch, timm and Ray take seconds to import."""
    code = ("import sys; from fer_search.cli import main; code = main(['run', 'cnn']); "
            "print(code, 'torch' in sys.modules, 'ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert "error: unknown family cnn" in done.stderr
