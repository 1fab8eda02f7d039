"""Image folders ROOT/{train,val|validation,test}/<class>/*.{jpg,jpeg,png,bmp} -> FERData.

Class folders map to FER2013 ids by name (never by sort order: folder names sort differently
from the `emotion` column). Unreadable files are skipped and reported instead of stopping a
28k-image load.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_search.data.types import CLASS_NAMES, IMAGE_SIZE, FERData, LoadReport, Split
from fer_search.errors import UserError
from fer_search.terminal import progress_bar

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
CLASS_ALIASES = {
    "angry": 0, "anger": 0,
    "disgust": 1, "disgusted": 1,
    "fear": 2, "fearful": 2,
    "happy": 3, "happiness": 3,
    "sad": 4, "sadness": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6,
}
# Colour modes; everything else PIL opens ("L", "LA", "1", "I", ...) is already grayscale.
_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV"}


@dataclass
class FolderScan:
    """What is on disk: per split, (relative path, class id) of every image file, sorted."""

    files: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    stamp: str = ""
    ignored: list[str] = field(default_factory=list)  # non-image files, relative paths


def split_folders(root: Path) -> dict[str, Path]:
    """Split role ("train" | "val" | "test") -> folder, for the split folders present in root."""
    found: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        role = SPLIT_FOLDERS.get(entry.name.lower())
        if role is None or not entry.is_dir():
            continue
        if role in found:
            raise UserError(f"{root}: both '{found[role].name}' and '{entry.name}' are {role} folders; keep one")
        found[role] = entry
    return found


def scan_folders(root: Path) -> FolderScan:
    """List and stat every file (cheap, ~0.1 s for FER2013) to name the source and stamp its state."""
    scan = FolderScan()
    stamps: list[str] = []
    for role, split_dir in split_folders(root).items():
        files: list[tuple[str, int]] = []
        for class_dir in sorted(split_dir.iterdir()):
            if class_dir.name.startswith("."):
                continue
            if not class_dir.is_dir():
                scan.ignored.append(class_dir.relative_to(root).as_posix())
                continue
            label = CLASS_ALIASES.get(class_dir.name.lower())
            if label is None:
                raise UserError(
                    f"{class_dir}: unknown class folder '{class_dir.name}'; expected one of "
                    f"{', '.join(CLASS_NAMES)} (or anger, disgusted, fearful, happiness, sadness, surprised)")
            with os.scandir(class_dir) as entries:
                for entry in entries:
                    rel = f"{split_dir.name}/{class_dir.name}/{entry.name}"
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                        scan.ignored.append(rel)
                        continue
                    st = entry.stat()
                    files.append((rel, label))
                    stamps.append(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
        files.sort()
        scan.files[role] = files
    if not any(scan.files.values()):
        raise UserError(f"{root}: no images found; expected {root}/train/<class>/*.jpg and/or "
                        f"{root}/test/<class>/*.jpg (extensions {', '.join(IMAGE_EXTENSIONS)})")
    stamps.sort()
    scan.stamp = "\n".join(stamps)
    return scan


def decode_image(path: Path) -> tuple[np.ndarray, bool, bool]:
    """-> (48x48 uint8 image, was resized, was converted from colour). Raises on unreadable files."""
    from PIL import Image

    with Image.open(path) as im:
        return to_fer_pixels(im)


def to_fer_pixels(im: "Image.Image") -> tuple[np.ndarray, bool, bool]:  # noqa: F821
    """Any PIL image -> (48x48 uint8 grayscale, was resized, was converted from colour).

    The one conversion for training images and for faces cut from photos, so both look alike.
    """
    from PIL import Image

    converted = im.mode in _COLOUR_MODES
    if im.mode != "L":
        im = im.convert("L")
    resized = im.size != (IMAGE_SIZE, IMAGE_SIZE)
    if resized:
        im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8), resized, converted


def _decode_or_reason(path: Path) -> tuple[np.ndarray, bool, bool] | str:
    from PIL import Image

    try:
        return decode_image(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"{type(e).__name__}: {e}"


def decode_folders(root: Path, scan: FolderScan, *, progress: bool) -> FERData:
    report = LoadReport()
    if scan.ignored:
        report.notes.append(f"ignored {len(scan.ignored)} non-image files (e.g. {scan.ignored[0]})")
    paths = [root / rel for files in scan.files.values() for rel, _ in files]
    # A plain loop: a 48x48 JPEG costs ~0.13 ms, mostly Python-side PIL overhead that holds the GIL;
    # a thread pool measured no faster (slower under load), and the result is cached anyway.
    results = [_decode_or_reason(p) for p in progress_bar(paths, desc=f"decoding {root.name}", unit="img",
                                                          enabled=progress, leave=False)]
    splits: dict[str, Split] = {}
    start = 0
    for role, files in scan.files.items():
        role_results, start = results[start:start + len(files)], start + len(files)
        if not files:
            report.notes.append(f"{role} folder holds no images; no {role} split")
            continue
        images, labels, ids = [], [], []
        for (rel, label), result in zip(files, role_results):
            if isinstance(result, str):
                report.skipped.append(f"{root / rel}: {result}")
                continue
            image, resized, converted = result
            images.append(image)
            labels.append(label)
            ids.append(rel)
            report.resized += resized
            report.converted_to_gray += converted
        if not images:
            raise UserError(f"{root / files[0][0].split('/')[0]}: none of its {len(files)} images could be read "
                            f"(e.g. {report.skipped[-1]})")
        splits[role] = Split(np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(ids, dtype=str))
    return FERData(f"folders:{root}", "folders", splits.get("train"), splits.get("val"), splits.get("test"), report)
