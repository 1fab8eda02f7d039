"""Data loading time: the first decode into the cache, then a cached load (goal: under 1 s).

    python benchmarks/load_time.py [DATA]      (DATA defaults to ../shared/fer2013)

The figures go to benchmarks/results/load_time-LABEL.json with the machine (results.py).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import results
from fer_search.data import load_data


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "../shared/fer2013")
    seconds = {}
    with tempfile.TemporaryDirectory() as cache:  # a fresh cache, so the first load really decodes
        for key, label in (("first_load_s", "first load (decode + write cache)"), ("cached_load_s", "second load (cache)")):
            started = time.perf_counter()
            data = load_data(source, cache_dir=cache, progress=False)
            seconds[key] = round(time.perf_counter() - started, 2)
            print(f"{label:<36} {seconds[key]:6.2f} s")
    images = {name: len(split) for name, split in data.splits().items()}
    print(f"{data.name}: " + ", ".join(f"{name} {count:,}" for name, count in images.items()))
    results.save("load_time", {**seconds, "images": images}, label=results.machine_label())


if __name__ == "__main__":
    main()
