"""`predict`'s face path on pictures composed from FER2013 test faces: detection recall, emotion
accuracy, agreement with the same faces classified alone, and faces per second on one CPU core.

    python benchmarks/faces.py [DATA] [--model MODEL] [--canvases 100] [--seed 0]

DATA defaults to ../shared/fer2013 and MODEL to out/cpu_train/model.pt (what benchmarks/cpu_train.sh
leaves; any model, ensemble or .onnx file works). Each 640x480 canvas holds 4 test/ faces upscaled to
96-160 px at random places; a face counts as found when a box overlaps where it was pasted with IoU >= 0.5.
Speed is process time on one thread (detection, cropping and classification), so other load on the
machine does not count. The figures go to benchmarks/results/faces-LABEL.json with the machine (results.py).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import results
from fer_search.data import load_data
from fer_search.inference.canvas import compose, match
from fer_search.inference import load_model_file
from fer_search.inference.predict import ExpressionReader

REPO = Path(__file__).resolve().parents[1]
FACES_PER_CANVAS = 4


def one_thread() -> None:
    """Time on one core, whatever the machine: OpenCV and PyTorch would otherwise use every core."""
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def test_canvases(data: str, count: int, seed: int):
    """-> (test split, (count, 4) indices of the faces pasted, [(rgb canvas, pasted boxes)])."""
    test = load_data(data, val_fraction=0, progress=False).test
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(test), count * FACES_PER_CANVAS, replace=False).reshape(count, FACES_PER_CANVAS)
    return test, picks, [compose(list(test.images[p]), rng) for p in picks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(REPO / "../shared/fer2013"))
    parser.add_argument("--model", default=str(REPO / "out/cpu_train/model.pt"))
    parser.add_argument("--canvases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    one_thread()

    reader = ExpressionReader(load_model_file(args.model, device="cpu"), faces="on")
    test, picks, canvases = test_canvases(args.data, args.canvases, args.seed)
    alone = reader.model.predict_proba(test.images[picks.ravel()]).argmax(1).reshape(picks.shape)

    seconds, found, false, side_ratios = 0.0, 0, 0, []
    on_canvas, truth, alone_found = [], [], []
    for (picture, pasted), faces, alone_labels in zip(canvases, picks, alone):
        started = time.process_time()
        scored = reader.score(picture)
        seconds += time.process_time() - started
        matched = match([s.box for s in scored], pasted)
        false += len(scored) - sum(m is not None for m in matched)
        for place, m, face, alone_label in zip(pasted, matched, faces, alone_labels):
            if m is None:
                continue
            found += 1
            side_ratios.append(scored[m].box.w / place.w)
            on_canvas.append(int(scored[m].probs.argmax()))
            truth.append(int(test.labels[face]))
            alone_found.append(int(alone_label))
    on_canvas, truth, alone_found = map(np.asarray, (on_canvas, truth, alone_found))
    total = picks.size
    figures = {
        "canvases": args.canvases, "faces": total, "model": args.model,
        "recall": round(found / total, 3), "faces_found": found, "false_detections": false,
        "side_ratio_mean": round(float(np.mean(side_ratios)), 3), "side_ratio_std": round(float(np.std(side_ratios)), 3),
        "accuracy_found_on_canvas": round(float(np.mean(on_canvas == truth)), 3),
        "accuracy_found_alone": round(float(np.mean(alone_found == truth)), 3),
        "same_as_alone": round(float(np.mean(on_canvas == alone_found)), 3),
        "accuracy_all_pasted": round(float(np.sum(on_canvas == truth) / total), 3),
        "accuracy_all_alone": round(float(np.mean(alone.ravel() == test.labels[picks.ravel()])), 3),
        "faces_per_s": round(found / seconds, 1), "canvases_per_s": round(args.canvases / seconds, 1),
    }
    f = figures
    print(f"{args.canvases} canvases of 640x480, {FACES_PER_CANVAS} faces each upscaled to 96-160 px, "
          f"from {args.data}/test; model {args.model}")
    print(f"detection recall (IoU >= 0.5)       {f['recall']:.1%} ({found} of {total}); "
          f"{false} false detections ({false / args.canvases:.2f} per canvas)")
    print(f"crop side / pasted side             {f['side_ratio_mean']:.3f} ± {f['side_ratio_std']:.3f} "
          f"(1 = framed as FER2013 crops)")
    print(f"emotion accuracy, faces found       {f['accuracy_found_on_canvas']:.1%} on the canvas, "
          f"{f['accuracy_found_alone']:.1%} for the same faces alone")
    print(f"same emotion as the face alone      {f['same_as_alone']:.1%}")
    print(f"emotion accuracy, all pasted faces  {f['accuracy_all_pasted']:.1%} (a missed face counts wrong); "
          f"{f['accuracy_all_alone']:.1%} for all of them alone")
    print(f"speed, one CPU thread               {f['faces_per_s']:.1f} faces/s found "
          f"({f['canvases_per_s']:.1f} canvases/s: detection + crops + classification)")
    results.save("faces", figures, label=results.machine_label())

if __name__ == "__main__":
    main()
