"""Bytes a search trial writes to storage per epoch for its checkpoints: the issue-17 example, ResNet18 with
AdamW and EMA (the heaviest resume state: model, EMA copy, two AdamW moments).

One real trial (fer_search.search.trial.run_trial, as Ray runs it, without Ray) trains on the data; every
directory it hands to report() is what Ray copies to storage, and every best-epoch folder it writes goes to
storage directly. Counted:

- after (this layout, default policy: a checkpoint on a new best, the last epoch, and at most one a minute
  otherwise; the best epoch's model and probabilities written once per new best);
- after, with --checkpoint-every 1 (a checkpoint every epoch, the best's files still only when they change);
- before (the previous layout: every epoch a full state.pt plus best/ with model.pt, probs.npz and
  summary.json), from the sizes of those same files, measured in the --checkpoint-every 1 run.

    python benchmarks/checkpoint_bytes.py [--data synthetic] [--epochs 12] [--max-train-images 512]

Figures go to benchmarks/results/checkpoint_bytes-LABEL.json (benchmarks/results.py).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402  (benchmarks/results.py)

from fer_search.data import load_data  # noqa: E402
from fer_search.search.storage import StoragePath  # noqa: E402
from fer_search.search.trial import run_trial  # noqa: E402

CONFIG = {"arch": "resnet18", "stem": "imagenet", "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "ema": 0.999,
          "batch_size": 64, "schedule": "cosine", "family": "resnet", "point": "benchmark", "trial_number": 0}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


class Counter:
    """report() that counts what a trial hands to Ray, and the best folders it wrote into its trial folder."""

    def __init__(self, trial_dir: Path):
        self.trial_dir = trial_dir
        self.epochs = self.checkpoints = self.new_bests = 0
        self.checkpoint_bytes = self.best_bytes = self.before_bytes = 0
        self.seen_best: set[str] = set()
        self.started = time.perf_counter()

    def __call__(self, metrics: dict, directory: str | None) -> None:
        self.epochs += 1
        for folder in self.trial_dir.glob("best_epoch_*"):
            if folder.name not in self.seen_best:
                self.seen_best.add(folder.name)
                self.new_bests += 1
                self.best_bytes += _size(folder)
        if directory is None:
            return
        self.checkpoints += 1
        self.checkpoint_bytes += _size(Path(directory))
        # The previous layout wrote this epoch's state.pt and the best epoch's files (+ summary) every epoch.
        best = self.trial_dir / sorted(self.seen_best)[-1]
        self.before_bytes += _size(Path(directory)) + _size(best)

    def figures(self, prefix: str) -> dict:
        written = self.checkpoint_bytes + self.best_bytes
        return {f"{prefix}_mb_per_epoch": round(written / self.epochs / 1e6, 2),
                f"{prefix}_checkpoints": self.checkpoints, f"{prefix}_new_best_epochs": self.new_bests,
                f"{prefix}_seconds_per_epoch": round((time.perf_counter() - self.started) / self.epochs, 2)}


def measure(data, config: dict, checkpoint_every: int | None, device: str) -> Counter:
    with tempfile.TemporaryDirectory() as folder:
        trial_dir = Path(folder) / "trial"
        counter = Counter(trial_dir)
        run_trial(config, data, report=counter, log_dir=str(Path(folder) / "board"),
                  trial_dir=StoragePath.of(trial_dir), device=device, checkpoint_every=checkpoint_every)
        shutil.rmtree(trial_dir, ignore_errors=True)
    return counter


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-train-images", type=int, default=512)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = load_data(args.data, progress=False)
    config = {**CONFIG, "epochs": args.epochs, "max_train_images": args.max_train_images}
    every_epoch = measure(data, config, 1, args.device)
    default = measure(data, config, None, args.device)
    figures = {"model": "resnet18 + AdamW + EMA", "data": data.name, "epochs": args.epochs,
               "max_train_images": args.max_train_images,
               "before_mb_per_epoch": round(every_epoch.before_bytes / every_epoch.epochs / 1e6, 2),
               **every_epoch.figures("every_epoch"), **default.figures("default")}
    for key, value in figures.items():
        print(f"{key:<32} {value}")
    print(f"wrote {results.save('checkpoint_bytes', figures, label=results.machine_label())}")
