"""load_data: recognise the form of a FER2013 source, decode it (once, via the cache), carve val."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from fer_search.data import cache, csv_forms, folders
from fer_search.data.splits import carve_validation, drop_held_out_copies
from fer_search.data.synthetic import make_synthetic
from fer_search.data.types import VAL_FRACTION, FERData
from fer_search.errors import UserError

SYNTHETIC = "synthetic"


def load_data(source: str | os.PathLike, *, val_fraction: float = VAL_FRACTION, seed: int = 0,
              cache_dir: str | os.PathLike | None = None, progress: bool = True,
              drop_test_copies: bool = True) -> FERData:
    """Load FER2013 from `source`:
    - Kaggle `fer2013.csv` (the file, or a folder holding it): val = PublicTest, test = PrivateTest;
    - torchvision's `fer2013/` folder (icml_face_data.csv, or train.csv + unlabeled test.csv);
    - image folders ROOT/{train,val|validation,test}/<class>/*.{jpg,jpeg,png,bmp};
    - the exact string "synthetic": the built-in procedural data set (see make_synthetic).
    Without a val split in the source, val is a stratified `val_fraction` of train drawn with
    `seed`, keeping each group of identical images on one side; val_fraction=0 keeps train whole
    (val=None). With `drop_test_copies`, training images identical to a test image (or to one of a
    validation split the source brought) are left out, counted in data.report. Raises UserError for
    bad input.
    """
    made = {"seed": seed, "fraction": val_fraction, "drop_test_copies": drop_test_copies}
    if isinstance(source, str) and source == SYNTHETIC:
        # A fixed data set (seed 0) whatever `seed` is: like a real source, only the val carve varies.
        data = make_synthetic(seed=0, val_fraction=0)
        data = carve_validation(drop_held_out_copies(data) if drop_test_copies else data, val_fraction, seed)
        return dataclasses.replace(data, val_split=made)
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist (give a fer2013.csv, a torchvision fer2013/ "
                        f"folder, image folders ROOT/train|test/<class>/, or 'synthetic')")
    path = path.resolve()
    form, found, stamp, decode = _recognise(path, progress)
    data = cache.cached(form, found, stamp, decode, cache_dir)
    data = carve_validation(drop_held_out_copies(data) if drop_test_copies else data, val_fraction, seed)
    return dataclasses.replace(data, val_split=made)


def _recognise(path: Path, progress: bool):
    """-> (form, the file or folder read, its stamp, decode function) for an existing path."""
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise UserError(f"{path}: not a CSV file; give a fer2013.csv, a torchvision fer2013/ folder "
                            "or an image-folder root")
        if path.name in csv_forms.TORCHVISION_FILES:
            return _recognise(path.parent, progress)
        return "kaggle_csv", path, _stamp([path]), lambda: csv_forms.read_kaggle_csv(path, progress=progress)
    # torchvision's download root holds a fer2013/ folder; accept that root or the folder itself.
    for folder in (path, path / "fer2013"):
        if (folder / "fer2013.csv").is_file():
            csv = folder / "fer2013.csv"
            return "kaggle_csv", csv, _stamp([csv]), lambda: csv_forms.read_kaggle_csv(csv, progress=progress)
        sources = csv_forms.torchvision_sources(folder) if folder.is_dir() else []
        if sources:
            return "torchvision", folder, _stamp(sources), lambda: csv_forms.read_torchvision(folder, progress=progress)
    if folders.split_folders(path):
        scan = folders.scan_folders(path)
        return "folders", path, scan.stamp, lambda: folders.decode_folders(path, scan, progress=progress)
    found = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    raise UserError(f"{path}: no FER2013 data found; expected fer2013.csv, torchvision's fer2013/ "
                    f"(train.csv, test.csv, icml_face_data.csv) or image folders train/ and/or test/ "
                    f"holding <class>/ folders; found: {', '.join(found[:10]) or 'nothing (empty folder)'}")


def _stamp(files: list[Path]) -> str:
    """CSV stamp: size and mtime are enough to notice a replaced or edited file."""
    return "\n".join(f"{f.name}\t{f.stat().st_size}\t{f.stat().st_mtime_ns}" for f in files)


def describe_load(data: FERData) -> str:
    """The lines a command prints about the data it loaded: split sizes, then what loading changed."""
    report = data.report
    sizes = ", ".join(f"{name} {len(split):,}" for name, split in data.splits().items())
    lines = [f"data: {data.name} ({sizes})"]
    if report.dropped_held_out_copies:
        lines.append(f"left out {report.dropped_held_out_copies} training image(s) identical to test images "
                     "(--keep-test-copies keeps them)")
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} unreadable image(s), e.g. {report.skipped[0]}")
    if report.resized:
        lines.append(f"resized {report.resized} image(s) to 48x48")
    if report.converted_to_gray:
        lines.append(f"converted {report.converted_to_gray} colour image(s) to grayscale")
    return "\n".join(lines)
