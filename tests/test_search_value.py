"""benchmarks/search_value.py (issue 15): the documented points alone, random search + ASHA and TPE + ASHA on one
budget, with seeds; --smoke runs the whole pipeline on synthetic data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parent.parent


@pytest.mark.slow
def test_search_value_runs_end_to_end_with_smoke(tmp_path):
    from fer_search.search import layout

    env = {**os.environ, "FER_SEARCH_RESULTS_DIR": str(tmp_path / "results"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "search_value.py"), str(tmp_path / "out"),
                           "--smoke"], capture_output=True, text=True, env=env, timeout=1500, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    assert (out / "search_value.png").stat().st_size > 0
    table = (out / "search_value.md").read_text()
    assert all(f"| {method} | 2 |" in table for method in ("points", "random", "tpe"))
    found = json.loads((out / "search_value.json").read_text())
    documented = set(yaml.safe_load((REPO / "benchmarks" / "cpu_space.yaml").read_text())["points"])
    for name, run in found["runs"].items():
        assert run["test_acc"] is not None and run["members"] >= 1
        assert any(v == v for v in run["curve"]), name  # a best-so-far value once the first epoch is in
        points = {t.point for t in layout.list_trials(out / "runs", name)}
        # points: the documented points only; random: none of them; tpe: the points, then TPE's own.
        expected = {"points": documented, "random": {"tpe"}, "tpe": documented | {"tpe"}}
        assert points == expected[run["method"]], name
    assert list((tmp_path / "results").glob("search_value_smoke-*.json"))
    assert list((tmp_path / "results").glob("search_value_smoke-*.png"))
