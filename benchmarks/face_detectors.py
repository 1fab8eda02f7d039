"""Which face detector `predict` uses: the installable candidates, measured the same way.

    python benchmarks/face_detectors.py [DATA] [--canvases 50] [--seed 0]

For each candidate: recall on canvases of upscaled FER2013 test faces (box IoU >= 0.5 with where a face
was pasted), false detections there, faces found in scikit-image's astronaut photo (one face), false
detections on scikit-image's face-free sample photos, CPU milliseconds per 640x480 canvas on one thread
(process time, so other load on the machine does not count), and the pasted side over the box side
(what CROP_SCALE in fer_search/inference/faces.py is set from).

Candidates: OpenCV's Haar cascades (opencv-python-headless < 5; the 5.x wheels no longer ship them),
scikit-image's LBP cascade, and facenet-pytorch's MTCNN when importable (its wheel pins torch < 2.3, so
it can only be installed beside this project with `pip install --no-deps facenet-pytorch`). YuNet is not
a candidate: no OpenCV wheel ships its weights, so it would need a download at run time.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from faces import FACES_PER_CANVAS, REPO, one_thread, test_canvases  # benchmarks/faces.py, beside this script
from fer_search.inference.canvas import match
from fer_search.inference.faces import Box

# scikit-image's bundled sample photos without a human face ("camera" shows a man, "astronaut" a woman).
FACE_FREE = ["brick", "cell", "chelsea", "clock_motion", "coffee", "coins", "color", "grass", "gravel", "horse",
             "hubble_deep_field", "ihc", "logo", "microaneurysms", "moon", "motorcycle_left", "page", "phantom",
             "retina", "rocket", "text"]


def haar(cascade: str, scale_step: float, min_neighbors: int):
    import cv2

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)

    def detect(gray: np.ndarray) -> list[Box]:
        found = classifier.detectMultiScale(gray, scale_step, min_neighbors, minSize=(32, 32))
        return [Box(*map(int, b)) for b in found]
    return detect


def skimage_lbp():
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    cascade = Cascade(lbp_frontal_face_cascade_filename())

    def detect(gray: np.ndarray) -> list[Box]:
        found = cascade.detect_multi_scale(gray, scale_factor=1.1, step_ratio=1, min_size=(32, 32),
                                           max_size=gray.shape)
        return [Box(d["c"], d["r"], d["width"], d["height"]) for d in found]
    return detect


def mtcnn():
    from facenet_pytorch import MTCNN

    network = MTCNN(keep_all=True, device="cpu")

    def detect(gray: np.ndarray) -> list[Box]:
        boxes, probs = network.detect(np.repeat(gray[..., None], 3, axis=2))
        if boxes is None:
            return []
        return [Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0))
                for (x0, y0, x1, y1), p in zip(boxes, probs) if p >= 0.9]
    return detect


def candidates():
    for cascade in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt.xml",
                    "haarcascade_frontalface_alt2.xml"):
        for scale_step, min_neighbors in ((1.1, 5), (1.05, 3), (1.05, 4), (1.05, 5)):
            name = f"OpenCV Haar {cascade.removeprefix('haarcascade_').removesuffix('.xml')} {scale_step}/{min_neighbors}"
            yield name, haar(cascade, scale_step, min_neighbors)
    yield "scikit-image LBP frontal face", skimage_lbp()
    try:
        yield "facenet-pytorch MTCNN (p >= 0.9)", mtcnn()
    except ImportError:
        print("(facenet-pytorch is not importable: MTCNN left out)")


def sample_photos() -> dict[str, np.ndarray]:
    """The files inside the installed scikit-image (its loader functions would download some others)."""
    import skimage.data
    from PIL import Image

    folder = Path(skimage.data.__file__).parent
    return {name: np.asarray(Image.open(next(folder.glob(f"{name}.*"))).convert("L"))
            for name in ["astronaut", *FACE_FREE]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(REPO / "../shared/fer2013"))
    parser.add_argument("--canvases", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    one_thread()

    _, picks, canvases = test_canvases(args.data, args.canvases, args.seed)
    grays = [canvas[..., 0] for canvas, _ in canvases]  # the canvases are gray: R = G = B
    photos = sample_photos()
    print(f"{args.canvases} canvases of 640x480 with {FACES_PER_CANVAS} faces each (upscaled to 96-160 px) "
          f"from {args.data}/test; {len(FACE_FREE)} face-free sample photos\n")
    print(f"{'detector':<40} {'recall':>7} {'false':>6} {'astronaut':>10} {'false on':>9} {'CPU ms':>7} "
          f"{'pasted side /':>14}")
    print(f"{'':<40} {'':>7} {'':>6} {'faces':>10} {'photos':>9} {'/canvas':>7} {'box side':>14}")
    for name, detect in candidates():
        started = time.process_time()
        found = [detect(gray) for gray in grays]
        ms_per_canvas = (time.process_time() - started) * 1000 / len(grays)
        matched = [match(boxes, truth) for boxes, (_, truth) in zip(found, canvases)]
        hits = sum(m is not None for ms in matched for m in ms)
        false = sum(len(boxes) for boxes in found) - hits
        ratios = [truth[t].w / boxes[m].w for boxes, ms, (_, truth) in zip(found, matched, canvases)
                  for t, m in enumerate(ms) if m is not None]
        astronaut = len(detect(photos["astronaut"]))
        false_on_photos = sum(len(detect(photos[n])) for n in FACE_FREE)
        print(f"{name:<40} {hits / picks.size:>7.1%} {false:>6} {astronaut:>10} {false_on_photos:>9} "
              f"{ms_per_canvas:>7.0f} {np.mean(ratios):>8.3f} ± {np.std(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
