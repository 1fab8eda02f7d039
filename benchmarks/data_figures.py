"""The data figures the README's results quote, written to benchmarks/results/data_figures.json.

    python benchmarks/data_figures.py [DATA]      # DATA defaults to $FER2013_ROOT, else ../shared/fer2013

Two things, no timing: `data audit` of the copy (class counts, imbalance, pixel statistics, blanks, duplicates,
images shared between train and test), and the split every run trains on (`load_data`'s defaults: test copies
left out of train, a duplicate-aware 10% validation carve with seed 0). Also the documented series' own
figures (search_spaces/<family>.py REPORTED: what its notebooks and README printed), which the README quotes.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import sys

import results
from fer_search.data import audit, load_data
from search_spaces import series_families


def _without_examples(value):
    """The audit without its example file names (figures only)."""
    if isinstance(value, dict):
        return {k: _without_examples(v) for k, v in value.items() if not k.endswith("examples")}
    if isinstance(value, list):
        return [_without_examples(v) for v in value]
    return value


def series_figures() -> dict:
    """Every figure the documented series reported, per family and documented point."""
    out = {}
    for family in series_families():
        reported = importlib.import_module(f"search_spaces.{family}").REPORTED
        out[family] = {point: [dataclasses.asdict(f) if dataclasses.is_dataclass(f) else f for f in figures]
                       for point, figures in reported.items()}
    return out


def main(argv: list[str]) -> int:
    data_path = argv[0] if argv else os.environ.get("FER2013_ROOT", "../shared/fer2013")
    whole = load_data(data_path, val_fraction=0, drop_test_copies=False)
    as_run = load_data(data_path)
    run_split = {name: len(split.labels) for name, split in as_run.splits().items()}
    run_split["train_left_out_as_test_copies"] = len(whole.train.labels) - run_split["train"] - run_split["val"]
    results.save("data_figures", {"audit": _without_examples(audit(whole)), "run_split": run_split,
                                  "series_reported": series_figures()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
