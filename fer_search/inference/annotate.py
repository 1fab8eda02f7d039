"""`predict --annotate OUT_DIR`: copies of images and videos with each face's box and label drawn."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_search.errors import UserError

# One colour per class id (RGB), so the same emotion looks the same in every picture.
PALETTE = [(230, 60, 60), (120, 170, 40), (150, 80, 200), (250, 200, 40), (60, 120, 230), (250, 130, 30),
           (200, 200, 200)]


class Annotator:
    """Writes annotated copies under `out_dir`, named like their inputs (paths below a folder argument
    kept); a name already written in this run gets `-2`, `-3`, ... so no copy overwrites another."""

    def __init__(self, out_dir: str | Path, class_names: list[str]):
        self.out_dir = Path(out_dir)
        self.class_names = class_names
        self.written: list[Path] = []
        self._video = None
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--annotate {out_dir}: cannot create the folder ({exc.strerror})") from None

    def output_path(self, source: Path, folder: Path | None, suffix: str) -> Path:
        relative = source.relative_to(folder) if folder is not None else Path(source.name)
        target = (self.out_dir / relative).with_suffix(suffix)
        stem, number = target.stem, 2
        while target in self.written:
            target, number = target.with_name(f"{stem}-{number}{suffix}"), number + 1
        target.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(target)
        return target

    def draw(self, rgb: np.ndarray, scored) -> np.ndarray:
        """A copy of rgb with each region's box (none for a whole image) and 'emotion confidence' label."""
        import cv2

        canvas = np.ascontiguousarray(rgb).copy()
        height, width = canvas.shape[:2]
        thickness = max(1, round(max(height, width) / 400))
        if not scored:
            self._label(canvas, "no face found", 0, 0, width, (255, 255, 255), thickness)
        for region in scored:
            label_id = int(region.probs.argmax())
            colour = PALETTE[label_id % len(PALETTE)]
            label = f"{self.class_names[label_id]} {region.probs.max():.2f}"
            if region.box is None:
                self._label(canvas, label, 0, 0, width, colour, thickness)
                continue
            box = region.box
            cv2.rectangle(canvas, (box.x, box.y), (box.x + box.w - 1, box.y + box.h - 1), colour, thickness)
            self._label(canvas, label, box.x, box.y, box.w, colour, thickness)
        return canvas

    @staticmethod
    def _label(canvas: np.ndarray, text: str, x: int, y: int, box_width: int, colour, thickness: int) -> None:
        """Dark text on a filled band above (x, y), or just below it when there is no room above."""
        import cv2

        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = max(0.4, min(box_width / 250, 2.0))
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
        band = text_h + baseline + 4
        top = y - band if y >= band else y
        cv2.rectangle(canvas, (x, top), (x + text_w + 4, top + band), colour, -1)
        cv2.putText(canvas, text, (x + 2, top + text_h + 2), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)

    def save_image(self, source: Path, folder: Path | None, rgb: np.ndarray, scored) -> None:
        from PIL import Image

        # GIF keeps a 256-colour palette that would smear the drawing: such copies are written as PNG.
        suffix = source.suffix.lower() if source.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
        Image.fromarray(self.draw(rgb, scored)).save(self.output_path(source, folder, suffix))

    def add_frame(self, source: Path, folder: Path | None, rgb: np.ndarray, scored, fps: float) -> None:
        """Append one frame to the annotated copy of `source` (an .mp4), opened on its first frame."""
        import cv2

        if self._video is None:
            target = self.output_path(source, folder, ".mp4")
            height, width = rgb.shape[:2]
            self._video = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps if fps > 0 else 25.0,
                                          (width, height))
            if not self._video.isOpened():
                raise UserError(f"{target}: OpenCV cannot write an mp4 video there")
        self._video.write(cv2.cvtColor(self.draw(rgb, scored), cv2.COLOR_RGB2BGR))

    def finish_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
