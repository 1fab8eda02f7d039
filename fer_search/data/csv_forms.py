"""FER2013 as CSV: Kaggle's fer2013.csv and torchvision's fer2013/ folder -> FERData.

Every row holds 2304 space-separated pixel values. ids are the 0-based row index within the
split, the numbering a Kaggle submission uses. Errors name the file and row; "line" is the
line in the file (the header is line 1), for opening it in an editor.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fer_search.data.types import IMAGE_SIZE, NUM_CLASSES, UNLABELED, FERData, LoadReport, Split
from fer_search.errors import UserError
from fer_search.terminal import progress_bar

PIXELS = IMAGE_SIZE * IMAGE_SIZE
USAGE_SPLITS = {"Training": "train", "PublicTest": "public", "PrivateTest": "private"}
TORCHVISION_FILES = ("icml_face_data.csv", "train.csv", "test.csv")


def read_kaggle_csv(path: Path, *, progress: bool) -> FERData:
    table = _read_table(path, required=("emotion", "pixels", "Usage"))
    return _usage_splits(table, path, f"kaggle_csv:{path}", "kaggle_csv", progress)


def torchvision_sources(folder: Path) -> list[Path]:
    """The files a torchvision fer2013/ folder is read from: icml_face_data.csv when present
    (it has labels for all three Usage splits), else train.csv and/or test.csv."""
    icml = folder / "icml_face_data.csv"
    if icml.is_file():
        return [icml]
    return [folder / name for name in ("train.csv", "test.csv") if (folder / name).is_file()]


def read_torchvision(folder: Path, *, progress: bool) -> FERData:
    name = f"torchvision:{folder}"
    sources = torchvision_sources(folder)
    if sources[0].name == "icml_face_data.csv":
        table = _read_table(sources[0], required=("emotion", "Usage", "pixels"))
        data = _usage_splits(table, sources[0], name, "torchvision", progress)
        if (folder / "train.csv").is_file():
            data.report.notes.append(f"read {sources[0].name}; train.csv/test.csv in {folder} were not used")
        return data
    splits: dict[str, Split] = {}
    for source in sources:
        role = source.stem  # "train" | "test"
        # torchvision's test.csv has no emotion column: those images are for prediction only.
        table = _read_table(source, required=("emotion", "pixels") if role == "train" else ("pixels",))
        rows = np.arange(len(table))
        labels = (_parse_emotion(table, source) if "emotion" in table.columns
                  else np.full(len(table), UNLABELED, np.int64))
        splits[role] = Split(_parse_pixels(table, source, progress), labels, rows.astype(str))
    return FERData(name, "torchvision", splits.get("train"), None, splits.get("test"))


def _usage_splits(table, path: Path, name: str, form: str, progress: bool) -> FERData:
    usage = table["usage"].str.strip()
    unknown = ~usage.isin(list(USAGE_SPLITS))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UserError(f"{_where(path, row)}: Usage is '{usage.iloc[row]}', expected one of "
                        f"{', '.join(USAGE_SPLITS)}")
    images = _parse_pixels(table, path, progress)
    labels = _parse_emotion(table, path)
    found = {}
    for usage_name, role in USAGE_SPLITS.items():
        index = np.flatnonzero((usage == usage_name).to_numpy())
        if len(index):
            found[role] = Split(images[index], labels[index], np.arange(len(index)).astype(str))
    report = LoadReport()
    tests = [u for u in ("PublicTest", "PrivateTest") if USAGE_SPLITS[u] in found]
    if len(tests) == 2:
        return FERData(name, form, found.get("train"), found["public"], found["private"], report)
    # Only one test split: it stays the test set, and val is carved from Training.
    if tests:
        report.notes.append(f"{path.name} has no {({'PublicTest', 'PrivateTest'} - set(tests)).pop()} rows: "
                            f"test = {tests[0]}, and any val split is carved from Training")
    return FERData(name, form, found.get("train"), None, found.get(USAGE_SPLITS[tests[0]]) if tests else None, report)


def _read_table(path: Path, required: tuple[str, ...]):
    """Read a CSV as strings with stripped, lower-case column names (torchvision's icml file
    spells them " Usage", " pixels"). `required` is spelled as users know it; matched in lower case."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable CSV file ({e})") from None
    found = list(table.columns)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in required if c.lower() not in table.columns]
    if missing:
        raise UserError(f"{path}: wrong columns: expected {', '.join(required)}; "
                        f"found {', '.join(repr(c) for c in found)} (missing {', '.join(missing)})")
    if len(table) == 0:
        raise UserError(f"{path}: has a header but no rows")
    return table


def _where(path: Path, row: int) -> str:
    return f"{path.name} row {row} (line {row + 2})"


def _parse_pixels(table, path: Path, progress: bool) -> np.ndarray:
    images = np.empty((len(table), PIXELS), np.uint8)
    rows = progress_bar(table["pixels"], desc=f"parsing {path.name}", unit="row", enabled=progress, leave=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # older numpy only warns on junk text
        for row, text in enumerate(rows):
            try:
                values = np.fromstring(text, dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning):
                bad = next((t for t in text.split() if not t.isdigit()), text[:20])
                raise UserError(f"{_where(path, row)}: pixels has a non-numeric value '{bad}'") from None
            if len(values) != PIXELS:
                raise UserError(f"{_where(path, row)}: pixels has {len(values)} values, expected {PIXELS}")
            if values.min() < 0 or values.max() > 255:
                raise UserError(f"{_where(path, row)}: pixels has a value outside 0..255 "
                                f"({values.min() if values.min() < 0 else values.max()})")
            images[row] = values
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _parse_emotion(table, path: Path) -> np.ndarray:
    import pandas as pd

    text = table["emotion"].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy()
    bad = np.isnan(values) | (values != np.round(values)) | (values < 0) | (values >= NUM_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{_where(path, row)}: emotion is '{text.iloc[row]}', expected an integer 0..{NUM_CLASSES - 1}")
    return values.astype(np.int64)
