"""Find the faces in a photo or video frame and cut each out the way FER2013's faces are framed.

The detector is one of OpenCV's Haar cascades, shipped inside the opencv-python-headless wheel, so
nothing is downloaded; the README's "Face detection" section gives the measurements behind the choice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_search.data.folders import to_fer_pixels
from fer_search.errors import UserError

CASCADE = "haarcascade_frontalface_alt.xml"
SCALE_STEP = 1.1       # detection window growth between scales: 1.05 found 4.5% more faces, twice as slowly,
MIN_NEIGHBORS = 5      # ... and with fewer neighbours twice as many false ones (benchmarks/face_detectors.py)
MIN_FACE = 32          # pixels in the detection copy; smaller faces carry too little for a 48x48 crop
DETECTION_MAX_SIDE = 1280  # larger images are searched on a shrunken copy: a 12 MP photo otherwise takes seconds
# FER2013's 48x48 crops are 1.04 times the box this cascade finds on them (benchmarks/face_detectors.py
# measures it), so a crop this much larger than the box frames a face as training images are framed.
CROP_SCALE = 1.04


@dataclass(frozen=True)
class Box:
    """A square region of an image in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def iou(self, other: Box) -> float:
        overlap_w = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        overlap_h = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        overlap = overlap_w * overlap_h
        return overlap / (self.w * self.h + other.w * other.h - overlap)


class FaceDetector:
    """`find(rgb uint8 (H, W, 3)) -> [Box]`: the crop box of every face, numbered left to right."""

    def __init__(self):
        import cv2

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self._cascade.empty():
            raise UserError(f"OpenCV's {CASCADE} is missing from {cv2.data.haarcascades}; reinstall with: "
                            "pip install 'opencv-python-headless<5'")

    def find(self, rgb: np.ndarray) -> list[Box]:
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        shrink = min(1.0, DETECTION_MAX_SIDE / max(height, width))
        if shrink < 1.0:
            gray = cv2.resize(gray, (round(width * shrink), round(height * shrink)), interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(gray, SCALE_STEP, MIN_NEIGHBORS, minSize=(MIN_FACE, MIN_FACE))
        boxes = [crop_box(*(np.asarray(b) / shrink), width, height) for b in found]
        return sorted(boxes, key=lambda b: (b.x, b.y))


def crop_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """A detector box -> the square FER2013-framed crop around it, moved inside a width x height image."""
    side = min(round(max(w, h) * CROP_SCALE), width, height)
    left = min(max(round(x + w / 2 - side / 2), 0), width - side)
    top = min(max(round(y + h / 2 - side / 2), 0), height - side)
    return Box(left, top, side, side)


def crop_face(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The 48x48 uint8 grayscale face in `box`, converted exactly as training images are."""
    from PIL import Image

    region = Image.fromarray(rgb[box.y:box.y + box.h, box.x:box.x + box.w])
    return to_fer_pixels(region)[0]
