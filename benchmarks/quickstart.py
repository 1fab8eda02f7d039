"""The README's first Quickstart line after its installs, as a new user runs it, timed and checked:

    python benchmarks/quickstart.py [--runs N] [--keep DIR]

Runs its `python -m fer_search ...` commands (the --smoke search on the synthetic data, then `ensemble`)
with this checkout's code in a fresh folder, N times, and prints and records (benchmarks/results/
quickstart-LABEL.json) the wall time of the search, the ensemble and both; each trial's status, epochs and
validation accuracy; the ensemble's members and weights; the vote's and the best member's validation
accuracy (recomputed from ensemble.pt and the members' model files); and whether every run came out the same.
To see a user's AVX2 CPU without bf16 on a newer one: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

import results  # noqa: E402  (benchmarks/results.py, beside this script)
from fer_search.data import load_data  # noqa: E402
from fer_search.search import layout  # noqa: E402
from fer_search.inference.predictor import load_predictor  # noqa: E402
from fer_search.training import checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PREFIX = ["python", "-m", "fer_search"]


def quickstart_commands() -> list[list[str]]:
    """The `python -m fer_search ...` commands of the README's first Quickstart line, as argv lists."""
    text = (REPO / "README.md").read_text()
    quickstart = text[text.index("## Quickstart"):]
    first_line = quickstart[quickstart.index("```bash\n") + len("```bash\n"):].splitlines()[0]
    return [argv for argv in map(shlex.split, first_line.split("&&")) if argv[:len(PREFIX)] == PREFIX]


def run_once(folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    seconds = []
    for argv in quickstart_commands():
        print("$ " + shlex.join(argv), flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, *argv[1:]], cwd=folder, env=env, check=True)
        seconds.append(round(time.perf_counter() - started, 1))
    storage = folder / "runs"
    trials = layout.list_trials(storage, layout.list_experiments(storage)[-1])
    outcome = {"trials": {t.name: _trial(t) for t in trials}, **_ensemble(storage / "ensemble" / "ensemble.pt")}
    return {"search_s": seconds[0], "ensemble_s": seconds[1], "total_s": round(sum(seconds), 1), "outcome": outcome}


def _trial(trial: layout.Trial) -> dict:
    summary = trial.summary() or {"metrics": {}}
    return {"status": trial.status, "epochs": trial.epochs, "val_acc": summary["metrics"].get("val_acc")}


def _ensemble(path: Path) -> dict:
    entry = checkpoint.load(path)
    val = load_data("synthetic", seed=0, progress=False).val  # the Quickstart's search: --seed 0

    def accuracy(source) -> float:
        return round(float(np.mean(load_predictor(source).predict_proba(val.images).argmax(1) == val.labels)), 4)

    return {"members": [Path(trial).name for trial in entry["metadata"]["trials"]],
            "weights": [round(w, 4) for w in entry["weights"]],
            "ensemble_val_acc": accuracy(entry), "best_member_val_acc": max(map(accuracy, entry["members"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="times to run it, each in a fresh folder [%(default)s]")
    parser.add_argument("--keep", type=Path, help="run in DIR/run-K and keep the results [a temporary folder]")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as temporary:
        for k in range(args.runs):
            folder = (args.keep or Path(temporary)) / f"run-{k + 1}"
            folder.mkdir(parents=True)
            runs.append(run_once(folder))
            print(f"run {k + 1}: search {runs[-1]['search_s']} s, ensemble {runs[-1]['ensemble_s']} s; "
                  f"{runs[-1]['outcome']}", flush=True)
    outcome = runs[0]["outcome"]
    figures = {"search_s": [r["search_s"] for r in runs], "ensemble_s": [r["ensemble_s"] for r in runs],
               "total_s": [r["total_s"] for r in runs], **outcome,
               "same_outcome_every_run": all(r["outcome"] == outcome for r in runs)}
    print(f"members: {len(outcome['members'])} ({', '.join(outcome['members'])}); ensemble val acc "
          f"{outcome['ensemble_val_acc']:.4f}, best member {outcome['best_member_val_acc']:.4f}; "
          f"total {figures['total_s']} s; same outcome every run: {figures['same_outcome_every_run']}")
    results.save("quickstart", figures, label=results.machine_label())


if __name__ == "__main__":
    main()
