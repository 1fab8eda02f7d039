"""Bucket storage (s3://, gs://, any URI pyarrow opens) behaves like a local folder: every experiment file is
written and read through the storage's pyarrow filesystem.

A "bucket" here is pyarrow's SubTreeFileSystem over a temporary folder, reached through the one function that
turns a URI into a filesystem: its paths ("fer/runs/...") are not paths on this machine, so any code that reads
them with pathlib finds nothing, as it would in a real bucket. The search itself runs on a file:// URI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

from fer_search.cli import main
from fer_search.search import layout
from fer_search.search.storage import StoragePath

SPACES = Path(__file__).parent / "spaces"


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """The local folder behind the URI scheme bucket:// (bucket://fer/runs is ROOT/fer/runs)."""
    root = tmp_path / "bucket_root"
    root.mkdir()

    def resolve(uri: str):
        if uri.startswith("bucket://"):
            return pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem()), uri[len("bucket://"):].split("?")[0]
        return pafs.FileSystem.from_uri(uri)

    monkeypatch.setattr("fer_search.search.storage._filesystem_from_uri", resolve)
    return root


def test_a_storage_path_in_a_bucket_writes_lists_and_reads_without_local_paths(bucket):
    experiment = StoragePath.of("bucket://fer/runs?region=x") / "exp"
    (experiment / "001_a" / "params.json").write_text('{"trial_number": 1}')
    (experiment / "002_b" / "params.json").write_bytes(b"{}")
    (experiment / "002_b" / "result.json").write_text("")
    assert str(experiment) == "bucket://fer/runs/exp" and experiment.local_path is None
    assert [p.parent.name for p in experiment.glob("*/params.json")] == ["001_a", "002_b"]
    assert (experiment / "001_a" / "params.json").read_text() == '{"trial_number": 1}'
    assert (bucket / "fer" / "runs" / "exp" / "001_a" / "params.json").is_file()
    assert experiment.is_dir() and not (experiment / "nope").exists()
    with pytest.raises(FileNotFoundError):
        (experiment / "nope.json").read_bytes()
    with pytest.raises(TypeError, match="not a local file"):
        Path(experiment)  # a bucket's path never passes for a local one


def test_asha_rungs_are_rebuilt_from_results_in_a_bucket(bucket):
    """On --resume, Tune adds every trial back to a fresh ASHA, which replays its recorded results; in a bucket
    they are only reachable through the storage's filesystem (trial.path has no scheme and no local meaning)."""
    from fer_search.search.ray_adaptations import RungHistoryASHA

    runs = StoragePath.of("bucket://fer/runs")
    scheduler = RungHistoryASHA(set(), time_attr="training_iteration", metric="best_val_acc", mode="max", max_t=9,
                                grace_period=1, reduction_factor=3)
    for name, values in (("a", [0.5, 0.6, 0.7]), ("b", [0.4, 0.5, 0.6])):
        lines = [json.dumps({"training_iteration": i + 1, "best_val_acc": v}) for i, v in enumerate(values)]
        (runs / "exp" / name / "result.json").write_text("\n".join(lines) + "\n")
        trial = SimpleNamespace(trial_id=name, path=f"fer/runs/exp/{name}", relative_logdir=name,
                                storage=SimpleNamespace(storage_filesystem=runs.fs))
        scheduler.on_trial_add(None, trial)
    rungs = dict(scheduler._brackets[0]._rungs)
    assert rungs[1] == {"a": 0.5, "b": 0.4} and rungs[3] == {"a": 0.7, "b": 0.6}


def test_leaderboard_and_ensemble_read_an_experiment_in_a_bucket(bucket, tiny_search, tmp_path, capsys):
    storage, name = tiny_search
    shutil.copytree(Path(storage, name), bucket / "fer" / "runs" / name)
    trials = layout.list_trials("bucket://fer/runs", name)
    assert len(trials) == 6 and all(t.model_path is not None and t.model_path.local_path is None for t in trials)
    assert main(["leaderboard", "--storage", "bucket://fer/runs"]) == 0
    assert "6 trials" in capsys.readouterr().out
    assert main(["ensemble", "--storage", "bucket://fer/runs", "--top", "2"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err
    assert main(["ensemble", "--storage", "bucket://fer/runs", "--top", "2", "--out", str(tmp_path / "ens")]) == 0
    assert (tmp_path / "ens" / "ensemble.pt").is_file() and (tmp_path / "ens" / "report.md").is_file()


@pytest.mark.slow
def test_a_search_on_a_uri_storage_keeps_its_record_and_resumes_with_more_trials(tmp_path, capsys):
    """file:// is a URI like s3://: the record is written and checked, --num-samples grows on --resume, and the
    outcome, the leaderboard and the ensemble read the experiment through the URI."""
    storage, name = f"file://{tmp_path}/runs", "uri"
    command = ["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic", "--storage", storage,
               "--name", name, "--study-storage", f"sqlite:///{tmp_path}/studies.db", "--max-epochs", "2",
               "--grace-period", "2", "--max-train-images", "256", "--cpus", "2"]
    assert main(command + ["--num-samples", "2"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "runs" / name / "experiment.json").read_text())
    assert record["num_samples"] == 2 and record["study_storage"] == f"sqlite:///{tmp_path}/studies.db"
    assert "(of 2 trials)" in out and f"results:     {tmp_path}/runs/{name}" in out

    resume = ["run", "--storage", storage, "--name", name, "--resume", "--num-samples", "3"]
    assert main(resume) == 0
    out = capsys.readouterr().out
    assert "3 trials in all" in out and "(of 3 trials)" in out
    assert json.loads((tmp_path / "runs" / name / "experiment.json").read_text())["num_samples"] == 3
    assert len(layout.list_trials(storage, name)) == 3
    assert main(["run", "--storage", storage, "--name", name, "--resume", "--seed", "5"]) == 2  # the record checks
    assert "--seed 5 would carve another validation split" in capsys.readouterr().err
    assert main(["leaderboard", "--storage", storage]) == 0
    assert "3 trials" in capsys.readouterr().out


def test_a_storage_that_cannot_be_opened_is_one_line(capsys):
    assert main(["leaderboard", "--storage", "nosuch://bucket/runs"]) == 2
    assert capsys.readouterr().err.startswith("error: storage nosuch://bucket/runs: ")
