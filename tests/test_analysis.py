"""The analysis on stored trial files: leaderboard, ensemble methods, report, ensemble.pt round trip, bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisWarning, combine
from analysis import ensemble as ens
from analysis.leaderboard import best_per_family, find_trials, imbalance_comparison, leaderboard
from analysis.report import score
from fer_search.cli import main
from fer_search.data import make_synthetic
from fer_search.errors import UserError
from fer_search.inference.predictor import load_predictor
from fer_search.training.config import IMBALANCE_OPTIONS
from fer_search.training.metrics import full_report

@pytest.fixture(scope="module")
def search(tiny_search, tiny_search_data):
    """(storage, experiment name, data) of the session's tiny real search (tests/conftest.py)."""
    storage, name = tiny_search
    return Path(storage), name, tiny_search_data


@pytest.fixture(scope="module")
def candidates(search):
    storage, name, _ = search
    return ens.load_candidates(find_trials(storage, [name]), progress=False)


def _ensemble(candidates, method, top=3, diverse=False):
    """As the ensemble command builds it (greedy: bagged selection from the library of the 20 best)."""
    members, weights, library = ens.choose(candidates, top, "val_acc", method, diverse=diverse)
    return ens.build(members, method, "val_acc", ens.members_tta(members), weights, library)


def _copy(storage: Path, tmp_path: Path) -> Path:
    """A private copy of the search's files, for tests that damage or add some."""
    copy = tmp_path / "runs"
    shutil.copytree(storage, copy)
    return copy


def _best_file(trial_dir: Path, name: str) -> Path:
    """summary.json of the trial's newest checkpoint, or model.pt / probs.npz in the best epoch's folder it names."""
    summary = max(trial_dir.glob("checkpoint_*")) / "summary.json"
    return summary if name == "summary.json" else trial_dir / json.loads(summary.read_text())["best_dir"] / name


def test_leaderboard_lists_every_trial_best_first(search, tmp_path):
    storage, name, _ = search
    storage = _copy(storage, tmp_path)
    errored = storage / name / "099_simple_cnn_tpe"  # a trial that failed before its first epoch
    errored.mkdir()
    (errored / "params.json").write_text(json.dumps({"family": "simple_cnn", "point": "tpe", "trial_number": 99}))
    (errored / "error.txt").write_text("RuntimeError: out of memory")
    table = leaderboard(find_trials(storage, [name]))
    statuses = table["status"].value_counts().to_dict()
    assert statuses.pop("errored") == 1 and set(statuses) <= {"completed", "stopped early"}
    assert table["trial"].iloc[-1] == "099_simple_cnn_tpe"  # no results: last
    scored = table["val_acc"].dropna()
    assert list(scored) == sorted(scored, reverse=True) and len(scored) == len(table) - 1
    assert set(best_per_family(table)["family"]) == {"simple_cnn", "deeper_cnn"}
    comparison = imbalance_comparison(table)
    assert list(comparison.index) == [o for o in IMBALANCE_OPTIONS if o in comparison.index]
    assert comparison["trials"].sum() == len(scored) and "none" in comparison.index
    assert table["hyperparameters"].str.contains("lr=").iloc[0]


def test_leaderboard_command_and_csv(search, tmp_path, capsys):
    storage, name, _ = search
    assert main(["leaderboard", "--storage", str(storage), "--name", name, "--csv", str(tmp_path / "board.csv")]) == 0
    printed = capsys.readouterr().out
    assert "best trial per family" in printed and "class-imbalance options" in printed
    assert max(len(line) for line in printed.splitlines()) <= 200  # it was about 300
    board = pd.read_csv(tmp_path / "board.csv")
    assert len(board) == len(find_trials(storage, [name])) and "config.lr" in board.columns
    assert set(board["device"]) == {"cpu"}  # recorded by each trial


def test_greedy_never_below_best_member(candidates):
    ensemble = _ensemble(candidates, "greedy", top=len(candidates))
    labels = ensemble.labels("val")
    best_member = max(combine.score(m.probs["val_probs"], labels, "val_acc") for m in ensemble.members)
    assert combine.score(ensemble.probs("val"), labels, "val_acc") >= best_member


def test_greedy_on_constructed_members_improves_on_the_best():
    """Three members, each right on a different 60% of the images: any two out-vote the third."""
    labels = np.repeat(np.arange(7), 30)
    right = [(np.arange(len(labels)) + shift) % 5 < 3 for shift in (0, 2, 4)]

    def vote(classes):
        return np.eye(7)[classes] * 0.6 + 0.4 / 7

    probs = np.stack([np.where(r[:, None], vote(labels), vote((labels + 1 + k) % 7)) for k, r in enumerate(right)])
    weights = combine.greedy_weights(probs, labels, "val_acc")
    assert combine.score(combine.combine(probs, weights), labels, "val_acc") > 0.6
    assert (weights > 0).sum() == 3


@pytest.mark.parametrize("method", combine.METHODS)
def test_every_method_is_deterministic(candidates, method):
    first, second = _ensemble(candidates, method), _ensemble(candidates, method)
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.temperature == second.temperature
    np.testing.assert_array_equal(first.probs("test"), second.probs("test"))
    assert first.weights.sum() == pytest.approx(1.0) and (first.weights >= 0).all()


def test_temperature_lowers_validation_nll_and_keeps_predictions(candidates):
    ensemble = _ensemble(candidates, "mean")
    raw, scaled = ensemble.probs("val", temperature=1.0), ensemble.probs("val")
    labels = ensemble.labels("val")
    assert combine.nll(scaled, labels) <= combine.nll(raw, labels) + 1e-9
    np.testing.assert_array_equal(raw.argmax(1), scaled.argmax(1))


def test_diverse_takes_one_member_per_family(candidates):
    with pytest.warns(AnalysisWarning, match="only 2 families"):
        members = ens.select(candidates, 3, "val_acc", diverse=True)
    assert sorted(m.trial.family for m in members) == ["deeper_cnn", "simple_cnn"]


def test_ensemble_file_gives_the_in_process_figures(candidates, search, tmp_path):
    _, _, data = search
    ensemble = _ensemble(candidates, "weighted")
    path = ens.save(ensemble, tmp_path / "ensemble.pt")
    loaded = load_predictor(path).predict_proba(data.test.images)
    np.testing.assert_allclose(loaded, ensemble.probs("test"), atol=1e-5)
    in_process = score(ensemble).reports["test"]["ensemble"]
    assert full_report(loaded, data.test.labels)["accuracy"] == in_process["accuracy"]


def _kaggle_csv(data, path: Path) -> Path:
    """The search's data as Kaggle's fer2013.csv: val as PublicTest, test as PrivateTest, in order."""
    rows = [(label, " ".join(map(str, image.ravel())), usage)
            for split, usage in ((data.train, "Training"), (data.val, "PublicTest"), (data.test, "PrivateTest"))
            for image, label in zip(split.images, split.labels)]
    pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"]).to_csv(path, index=False)
    return path


def test_ensemble_command_report_and_evaluate_round_trip(search, candidates, tmp_path, capsys, monkeypatch):
    storage, name, data = search
    out = tmp_path / "out"
    assert main(["ensemble", "--storage", str(storage), "--name", name, "--top", "3", "--out", str(out),
                 "--json", str(tmp_path / "scores.json")]) == 0
    printed = capsys.readouterr().out
    assert "validation only" in printed and "ensemble.pt" in printed
    report = (out / "report.md").read_text()
    assert "validation split only" in report and "scored once" in report
    pngs = ["confusion_matrices", "per_class_f1_val", "per_class_f1_test", "learning_curves", "imbalance_comparison"]
    for png in pngs:
        assert (out / f"{png}.png").stat().st_size > 1000, png
        assert f"({png}.png)" in report
    assert not (out / "submission.csv").exists()  # synthetic test ids are paths, not Kaggle rows
    assert "## Parameter importance\n\nStudy 'tiny' has " in report  # too few completed trials: the note says so

    in_process = score(_ensemble(candidates, "greedy")).reports["test"]["ensemble"]["accuracy"]
    assert "| ensemble | 1.0000 |" in report and f"{in_process:.4f}" in report
    table = json.loads((tmp_path / "scores.json").read_text())
    assert table["ensemble"]["test_acc"] == in_process  # --json
    members = [name for name in table if not name.startswith("ensemble")]
    assert members and "## Ensemble against each member" in report
    for member in members:  # the ensemble's gain over each member, with its interval, in JSON and on the console
        for split in ("val", "test"):
            row = table[member]
            gain = row[f"{split}_ensemble_gain"]
            assert gain == pytest.approx(table["ensemble"][f"{split}_acc"] - row[f"{split}_acc"])
            assert row[f"{split}_ensemble_gain_low"] <= gain <= row[f"{split}_ensemble_gain_high"]
        assert f"  {member}: val {table[member]['val_ensemble_gain']:+.4f} [" in printed
    monkeypatch.setenv("FER_SEARCH_CACHE", str(tmp_path / "cache"))
    csv = _kaggle_csv(data, tmp_path / "fer2013.csv")
    assert main(["evaluate", str(out / "ensemble.pt"), "--data", str(csv), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == in_process


def test_ensemble_refit_reports_its_test_score_in_the_json_too(search, tmp_path, capsys, monkeypatch):
    import fer_search.data

    storage, name, data = search
    monkeypatch.setattr(fer_search.data, "load_data", lambda source, **options: data)  # the search's own data
    scores_file = tmp_path / "scores.json"
    assert main(["ensemble", "--storage", str(storage), "--name", name, "--top", "2", "--out", str(tmp_path / "out"),
                 "--refit", "--data", "the search's", "--json", str(scores_file)]) == 0
    printed = capsys.readouterr().out
    refit = json.loads(scores_file.read_text())["ensemble (refit)"]
    assert set(refit) == {"weight", "test_acc", "test_macro_f1", "test_ece"}  # no validation: it trained on it
    assert f"refit ensemble (members retrained on train + validation): test acc {refit['test_acc']:.4f}" in printed
    assert (tmp_path / "out" / "refit" / "ensemble.pt").is_file()


def test_tta_rescores_with_flip(candidates, search, tmp_path):
    _, _, data = search
    members = ens.select(candidates, 2, "val_acc", diverse=False)
    stored = members[0].probs["val_probs"].copy()
    ens.rescore_with_tta(members, data, progress=False)
    assert not np.allclose(stored, members[0].probs["val_probs"])
    expected = load_predictor(members[0].trial.model_path, tta="flip").predict_proba(data.val.images)
    np.testing.assert_allclose(members[0].probs["val_probs"], expected, atol=1e-6)
    with pytest.raises(UserError, match="does not hold the validation images"):
        ens.rescore_with_tta(members, make_synthetic(n_train=600, n_test=200, seed=7), progress=False)


def test_tta_needs_the_data(search, capsys):
    storage, name, _ = search
    assert main(["ensemble", "--storage", str(storage), "--name", name, "--tta"]) == 2
    assert "--data" in capsys.readouterr().err


def test_kaggle_test_split_gets_a_submission(candidates, tmp_path):
    ensemble = _ensemble(candidates, "mean")
    for m in ensemble.members:
        m.probs = {**m.probs, "test_ids": np.arange(len(m.probs["test_ids"])).astype(str)}
    assert ens.kaggle_test(ensemble)
    table = pd.read_csv(ens.write_submission(ensemble, tmp_path / "submission.csv"))
    assert list(table.columns) == ["id", "emotion"] and len(table) == len(ensemble.labels("test"))
    assert table["emotion"].between(0, 6).all()


def test_missing_experiment_is_a_clear_error(search, tmp_path, capsys):
    storage, _, _ = search
    assert main(["ensemble", "--storage", str(storage), "--name", "nope"]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["leaderboard", "--storage", str(empty)]) == 2
    assert "no experiment found" in capsys.readouterr().err
    assert main(["ensemble", "--storage", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_corrupt_trials_are_skipped_with_a_warning(search, tmp_path):
    storage, name, _ = search
    storage = _copy(storage, tmp_path)
    trials = sorted(p for p in (storage / name).iterdir() if (p / "params.json").exists())
    _best_file(trials[0], "probs.npz").write_bytes(b"not a zip")
    for checkpoint_dir in trials[1].glob("checkpoint_*"):
        shutil.rmtree(checkpoint_dir)
    with pytest.warns(AnalysisWarning) as caught:
        found = ens.load_candidates(find_trials(storage, [name]), progress=False)
    assert len(found) == len(trials) - 2
    assert {str(w.message).split(" ")[1] for w in caught} == {trials[0].name, trials[1].name}
    best = max(found, key=lambda m: m.score("val_acc"))
    _best_file(best.trial.path, "model.pt").write_bytes(b"truncated")
    with pytest.warns(AnalysisWarning, match=best.name):
        members = ens.select(found, 2, "val_acc", diverse=False)
    assert best.name not in [m.name for m in members] and len(members) == 2


def test_corrupt_summary_and_progress_never_crash(search, tmp_path):
    storage, name, _ = search
    storage = _copy(storage, tmp_path)
    trials = sorted(p for p in (storage / name).iterdir() if (p / "params.json").exists())
    _best_file(trials[0], "summary.json").write_text("{not json")
    for trial in trials[1:]:
        (trial / "progress.csv").write_text('epoch,val_acc\n"1,0.5\n')  # an unterminated quote
    (trials[1] / "result.json").write_text('{"done": true, "training_iteration": 3, "finis')  # torn last line
    with pytest.warns(AnalysisWarning, match=trials[0].name):
        table = leaderboard(find_trials(storage, [name]))
    assert table.set_index("trial").loc[trials[0].name, "val_acc"] > 0  # taken from progress.csv instead
    with pytest.warns(AnalysisWarning) as caught:
        assert main(["ensemble", "--storage", str(storage), "--out", str(tmp_path / "out")]) == 0
    assert "unreadable progress.csv" in " ".join(str(w.message) for w in caught)
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 1000


def test_top_k_beyond_the_finished_trials_warns_and_uses_them(candidates):
    with pytest.warns(AnalysisWarning, match=f"only {len(candidates)} finished trials"):
        assert len(ens.select(candidates, 50, "val_acc", diverse=False)) == len(candidates)


def test_trials_on_different_data_are_refused(search, tmp_path):
    storage, name, _ = search
    storage = _copy(storage, tmp_path)
    shutil.copytree(storage / name, storage / "other")
    probs_file = _best_file(next((storage / "other").glob("000_*")), "probs.npz")
    with np.load(probs_file) as stored:
        arrays = dict(stored)
    arrays["val_ids"] = np.array([f"x{i}" for i in range(len(arrays["val_ids"]))])
    np.savez(probs_file, **arrays)
    with pytest.raises(UserError, match="different data or class sets"):
        ens.load_candidates(find_trials(storage, None), progress=False)


def test_analysis_never_imports_ray():
    code = ("import sys, analysis.cli, analysis.ensemble, analysis.export, analysis.leaderboard, analysis.report; "
            "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_ensemble_takes_the_newest_experiment_and_names_members_by_experiment(search, tmp_path, capsys):
    """The Quickstart run twice: two experiments with the same trial names under one storage."""
    storage, name, _ = search
    copy = _copy(storage, tmp_path)
    shutil.copytree(copy / name, copy / "again")  # newer (copied after): the default
    assert main(["ensemble", "--top", "3", "--method", "mean", "--storage", str(copy),
                 "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert f"experiment: again (the newest under {copy}" in out and f"{name}/" not in out
    assert main(["ensemble", "--top", "4", "--method", "weighted", "--storage", str(copy), "--name", name, "again",
                 "--out", str(tmp_path / "both")]) == 0
    summary = capsys.readouterr().out.split("\n\n")[0]
    weights = {line.split()[0]: float(line.split()[1]) for line in summary.splitlines()[1:]
               if line.startswith((f"{name}/", "again/"))}
    assert len(weights) == 4 and sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert any(k.startswith(f"{name}/") for k in weights) and any(k.startswith("again/") for k in weights)
