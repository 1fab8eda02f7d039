"""Data loading time: the first decode into the cache, then a cached load (goal: under 1 s).

    python benchmarks/load_time.py [DATA]      (DATA defaults to ../shared/fer2013)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from fer_search.data import load_data


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "../shared/fer2013")
    with tempfile.TemporaryDirectory() as cache:  # a fresh cache, so the first load really decodes
        for label in ("first load (decode + write cache)", "second load (cache)"):
            started = time.perf_counter()
            data = load_data(source, cache_dir=cache, progress=False)
            print(f"{label:<36} {time.perf_counter() - started:6.2f} s")
    print(f"{data.name}: " + ", ".join(f"{name} {len(split):,}" for name, split in data.splits().items()))


if __name__ == "__main__":
    main()
