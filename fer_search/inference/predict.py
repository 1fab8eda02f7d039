"""`predict`: images, videos and folders of them -> one row per face (or per whole image), and
annotated copies on request.

A file that cannot be used (unreadable image, video OpenCV cannot open, a folder's non-media file)
becomes a row that says why; the other files are still processed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_search.data.folders import to_fer_pixels
from fer_search.data.types import IMAGE_SIZE
from fer_search.errors import UserError
from fer_search.inference.faces import Box, FaceDetector, crop_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
NO_FACE = "no face found"
INTEGER_COLUMNS = ["frame", "face", "x", "y", "w", "h"]
LEADING_COLUMNS = ["file", "frame", "time_s", "face", "x", "y", "w", "h", "emotion", "confidence"]


@dataclass
class Scored:
    """One classified region: a face's box, or None for a whole image."""

    box: Box | None
    probs: np.ndarray


class ExpressionReader:
    """A model (`predict_proba`, `class_names`) plus the face-or-whole-image decision of `--faces`."""

    def __init__(self, model, faces: str = "auto"):
        if faces not in ("auto", "on", "off"):
            raise UserError(f"--faces must be auto, on or off; got '{faces}'")
        self.model = model
        self.class_names = list(model.class_names)
        self.faces = faces
        self.detector = FaceDetector() if faces != "off" else None

    def finds_faces(self, width: int, height: int) -> bool:
        """auto: a 48x48 image is taken for a FER2013-style face crop already; anything else is searched."""
        return self.faces == "on" or (self.faces == "auto" and (width, height) != (IMAGE_SIZE, IMAGE_SIZE))

    def score(self, rgb: np.ndarray, image=None) -> list[Scored]:
        """rgb uint8 (H, W, 3) -> every face found (maybe none), or the whole image as one region.

        `image`, when given, is the PIL image `rgb` came from: the whole-image path converts it
        directly, exactly as `decode_image` does for training files.
        """
        height, width = rgb.shape[:2]
        if not self.finds_faces(width, height):
            from PIL import Image

            pixels = to_fer_pixels(image if image is not None else Image.fromarray(rgb))[0]
            return [Scored(None, self.model.predict_proba(np.stack([pixels]))[0])]
        boxes = self.detector.find(rgb)
        if not boxes:
            return []
        probs = self.model.predict_proba(np.stack([crop_face(rgb, box) for box in boxes]))
        return [Scored(box, p) for box, p in zip(boxes, probs)]

    def rows(self, file: Path, scored: list[Scored], **where) -> list[dict]:
        """Table rows for one image or frame; `where` holds a video's frame and time."""
        if not scored:
            return [{"file": str(file), **where, "emotion": NO_FACE}]
        rows = []
        for index, region in enumerate(scored):
            row = {"file": str(file), **where}
            if region.box is not None:
                row.update(face=index, x=region.box.x, y=region.box.y, w=region.box.w, h=region.box.h)
            row.update(emotion=self.class_names[int(region.probs.argmax())], confidence=float(region.probs.max()))
            row.update(zip(self.class_names, map(float, region.probs)))
            rows.append(row)
        return rows


def collect_inputs(inputs: list[str]) -> list[tuple[Path, Path | None]]:
    """(file, the folder argument it was found under, or None for a file named directly), in order."""
    files: list[tuple[Path, Path | None]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += [(p, item) for p in sorted(item.rglob("*"))
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(item).parts)]
        elif item.is_file():
            files.append((item, None))
        else:
            raise UserError(f"{item}: no such file or folder")
    if not files:
        raise UserError(f"no files found in {', '.join(inputs)}")
    return files


def predict_inputs(model, inputs: list[str], *, faces: str = "auto", every: int = 1,
                   annotate: str | Path | None = None, progress: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """Rows for every image and video in `inputs` (files or folders, searched recursively).

    Columns: file, frame and time_s (videos), face and its box x, y, w, h (face mode), emotion,
    confidence, one probability per class. `emotion` says why when a file or frame has no result.
    """
    import pandas as pd

    from fer_search.inference.annotate import Annotator

    if every < 1:
        raise UserError(f"--every must be at least 1; got {every}")
    reader = ExpressionReader(model, faces)
    annotator = Annotator(annotate, reader.class_names) if annotate is not None else None
    rows: list[dict] = []
    for path, folder in collect_inputs(inputs):
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            rows += predict_video(reader, path, folder, every, annotator, progress)
        elif suffix in IMAGE_SUFFIXES or folder is None:  # a file named directly is tried as an image
            rows += predict_image(reader, path, folder, annotator)
        else:
            rows.append({"file": str(path), "emotion": "skipped: not an image or video file"})
    table = pd.DataFrame(rows)
    present = [c for c in LEADING_COLUMNS if c in table] + [c for c in reader.class_names if c in table]
    table = table[present]
    for column in INTEGER_COLUMNS:
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def format_table(table: "pandas.DataFrame") -> str:  # noqa: F821
    """The rows as an aligned text table: probabilities to 3 decimals, blanks where a row has no value."""
    shown = table.astype(object).where(table.notna(), "")
    for column in table.columns:
        if table[column].dtype.kind == "f":
            shown[column] = [f"{v:.3f}" if v != "" else "" for v in shown[column]]
    return shown.to_string(index=False)


def predict_image(reader: ExpressionReader, path: Path, folder: Path | None, annotator) -> list[dict]:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # phone photos store their rotation in EXIF
            rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # PIL raises many types for broken files; one bad file must not stop the rest
        return [{"file": str(path), "emotion": f"unreadable: {type(exc).__name__}"}]
    scored = reader.score(rgb, image)
    if annotator is not None:
        annotator.save_image(path, folder, rgb, scored)
    return reader.rows(path, scored)


def predict_video(reader: ExpressionReader, path: Path, folder: Path | None, every: int, annotator,
                  progress: bool) -> list[dict]:
    """Every `every`-th frame scored; an annotated copy shows each frame with the latest faces drawn."""
    import os

    # FFmpeg's own complaints about a broken file would interleave with the table; the row says it.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2
    from tqdm import tqdm

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return [{"file": str(path), "emotion": "unreadable: OpenCV cannot open this video"}]
    fps = capture.get(cv2.CAP_PROP_FPS)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    rows: list[dict] = []
    shown: list[Scored] = []
    frames = 0
    with tqdm(total=total or None, desc=path.name, unit="frame", leave=False,
              disable=None if progress else True) as bar:
        while True:
            scoring = frames % every == 0
            if not scoring and annotator is None:
                if not capture.grab():  # skipped frames need no decoding into an array
                    break
            else:
                ok, bgr = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if scoring:
                    shown = reader.score(rgb)
                    time_s = round(frames / fps, 3) if fps > 0 else None
                    rows += reader.rows(path, shown, frame=frames, time_s=time_s)
                if annotator is not None:
                    annotator.add_frame(path, folder, rgb, shown, fps)
            frames += 1
            bar.update()
    capture.release()
    if annotator is not None:
        annotator.finish_video()
    if frames == 0:
        return [{"file": str(path), "emotion": "unreadable: no frame could be decoded"}]
    return rows
