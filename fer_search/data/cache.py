"""Decode-once cache: one uncompressed .npz per source, so a repeat load is a plain memory read.

The key is form + absolute path + a stamp of the source files (sizes and mtimes), so editing, adding or
touching a file re-reads it. Only the splits as decoded are stored (before the train/val carve,
which is cheap and depends on seed and val_fraction).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from fer_search.data.types import FERData, LoadReport, Split

# Bump when the decoding changes, so old cache files are never mistaken for current ones.
CACHE_VERSION = "1"
_SPLITS = ("train", "val", "test")
_warned_unwritable = False


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_SEARCH_CACHE") or Path.home() / ".cache" / "fer_search")


def cached(form: str, source: Path, stamp: str, decode: Callable[[], FERData],
           cache_dir: str | os.PathLike | None) -> FERData:
    """Return the cached decode of `source` if its stamp still matches, else decode and store."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    source_key = hashlib.sha256(f"{CACHE_VERSION}\0{form}\0{source}".encode()).hexdigest()[:16]
    content_key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    path = directory / f"{form}-{source_key}-{content_key}.npz"
    data = _read(path)
    if data is not None:
        return data
    data = decode()
    _write(path, data, stale_prefix=f"{form}-{source_key}-")
    return data


def _read(path: Path) -> FERData | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            splits = {
                name: Split(z[f"{name}_images"], z[f"{name}_labels"], z[f"{name}_ids"])
                for name in meta["splits"]
            }
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # truncated or foreign file: decode again and overwrite it
    return FERData(meta["name"], meta["form"], report=LoadReport(**meta["report"]),
                   **{name: splits.get(name) for name in _SPLITS})


def _write(path: Path, data: FERData, stale_prefix: str) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, split in data.splits().items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
        arrays[f"{name}_ids"] = split.ids.astype(str)
    meta = {"name": data.name, "form": data.form, "splits": list(data.splits()),
            "report": dataclasses.asdict(data.report)}
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name and rename, so a crash never leaves a half-written cache file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _warn_unwritable(path.parent, e)
        return
    # Entries for an older version of the same source can never hit again.
    for old in path.parent.glob(f"{stale_prefix}*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def _warn_unwritable(directory: Path, error: OSError) -> None:
    global _warned_unwritable
    if not _warned_unwritable:
        _warned_unwritable = True
        warnings.warn(f"cache dir {directory} is not writable ({error.strerror or error}); "
                      "loading without a cache (set FER_SEARCH_CACHE or cache_dir to change it)",
                      stacklevel=4)
