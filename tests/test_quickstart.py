"""The README's first Quickstart line, as a new user runs it: a --smoke search on the synthetic data, then an
ensemble that must hold several trials and vote at least as well as each of them on validation."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).parent.parent / "README.md"


def quickstart_commands() -> list[list[str]]:
    """The `python -m fer_search ...` commands of the Quickstart's first line (after its installs), as argv lists."""
    text = README.read_text()
    quickstart = text[text.index("## Quickstart"):]
    first_line = quickstart[quickstart.index("```bash\n") + len("```bash\n"):].splitlines()[0]
    prefix = ["python", "-m", "fer_search"]
    commands = [shlex.split(part) for part in first_line.split("&&")]
    return [argv[len(prefix):] for argv in commands if argv[:len(prefix)] == prefix]


def _accuracy(predictor, split) -> float:
    return float(np.mean(predictor.predict_proba(split.images).argmax(1) == split.labels))


@pytest.mark.slow
def test_quickstart_ends_with_an_ensemble_that_votes_at_least_as_well_as_its_members(tmp_path, monkeypatch, capsys):
    from fer_search.cli import main
    from fer_search.data import load_data
    from fer_search.search.cli import SMOKE
    from fer_search.inference.predictor import load_predictor
    from fer_search.training import checkpoint

    run, ensemble = quickstart_commands()
    assert run[:2] == ["run", "simple_cnn"] and "--smoke" in run and ensemble[0] == "ensemble"
    monkeypatch.chdir(tmp_path)
    storage, out = tmp_path / "runs", tmp_path / "runs" / "ensemble"
    assert main([*run, "--storage", str(storage)]) == 0
    assert main([*ensemble, "--storage", str(storage), "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    entry = checkpoint.load(out / "ensemble.pt")
    members = entry["members"]
    assert len(members) >= 2, printed
    # Different configurations, not copies differing only in their seeds.
    assert len({json.dumps({k: v for k, v in m["config"].items() if k != "seed"}, sort_keys=True, default=str)
                for m in members}) == len(members)
    assert all(m["config"].get("imbalance") != "both" for m in members)  # simple_cnn v3, the documented collapse
    data = load_data("synthetic", seed=0, progress=False)  # the search's validation carve (its --seed)
    vote = _accuracy(load_predictor(entry), data.val)
    alone = [_accuracy(load_predictor(member), data.val) for member in members]
    assert vote >= max(alone), (vote, alone)
    # The closing lines say what happened and where to look.
    for line in (f"The search ran {SMOKE['num_samples']} trials", "The ensemble holds",
                 "report:      runs/ensemble/report.md", "tensorboard: tensorboard --logdir runs",
                 "dashboard:   python -m fer_search dashboard"):
        assert line in printed, line
