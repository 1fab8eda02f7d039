"""Training throughput: fer_search's trainer vs. the usual PIL-transforms-in-a-DataLoader loop.

Both train the same model with the same optimiser, batch size and number of steps, with the documented
augmentation list on, in the same precision: fp32, and bf16 autocast where the device has it (CUDA, or a
CPU with native bf16), each reported on its own. The reference keeps images in memory (no JPEG decoding:
that favours it) and runs torchvision PIL transforms per image in DataLoader worker processes. It is timed
after its first batch, so worker start-up is not charged to it; fer_search's figure includes its first step.
The figures go to benchmarks/results/throughput-LABEL.json with the machine (results.py).

    python benchmarks/throughput.py                        # CPU (and CUDA when present), synthetic data
    python benchmarks/throughput.py --data ../shared/fer2013 --device cpu --runs 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import results
from fer_search.data import load_data
from fer_search.models import create_model
from fer_search.training import TrainConfig, train

SIMPLE_CNN_V2 = {"widths": (32, 64), "kernel_size": 5, "fc_width": 128, "batch_norm": True, "dropout": 0.4}


class PILDataset(Dataset):
    """Per-image PIL augmentation, the way most FER notebooks do it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([
            transforms.RandomHorizontalFlip(0.5),
            transforms.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10),
            transforms.ColorJitter(brightness=0.2, contrast=0.2),
            transforms.ToTensor(),
            transforms.Normalize([mean], [std]),
            transforms.RandomErasing(p=0.1),
        ])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_images_per_s(images, labels, device: torch.device, steps: int, batch: int, workers: int,
                           bf16: bool) -> float:
    torch.manual_seed(0)
    mean, std = float(images.mean()) / 255, float(images.std()) / 255
    loader = DataLoader(PILDataset(images, labels, mean, std), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    model = create_model("simple_cnn", **SIMPLE_CNN_V2).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, weight_decay=1e-4)
    model.train()
    batches = iter(loader)
    next(batches)  # worker start-up is not charged to the reference
    started, done = time.perf_counter(), 0
    while done < steps:
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def fer_search_images_per_s(data, device: torch.device, steps: int, batch: int, bf16: bool) -> float:
    config = TrainConfig.from_flat({
        "arch": "simple_cnn", **SIMPLE_CNN_V2, "epochs": 1, "batch_size": batch, "lr": 5e-4, "weight_decay": 1e-4,
        "schedule": "none", "augment": 1.0, "max_train_images": steps * batch, "precision": "bf16" if bf16 else "fp32",
    })
    result = train(config, data, device=str(device), progress=False)
    return result.history[0]["images_per_s"]


def precisions(device: torch.device) -> list[str]:
    """fp32 everywhere; bf16 too where the device computes it natively (on other CPUs autocast emulates it)."""
    native = device.type == "cuda" or (torch.backends.mkldnn.is_available()
                                       and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return ["fp32", "bf16"] if native else ["fp32"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--runs", type=int, default=3, help="runs per side; the median is reported")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: 60 CPU, 300 CUDA)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default: CPU cores)")
    args = parser.parse_args()

    info = results.machine()
    print(f"machine: {results.describe(info)}")
    data = load_data(args.data, progress=False)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    figures = {}
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: no CUDA device visible, skipped")
            continue
        device = torch.device(name)
        steps = args.steps or (60 if name == "cpu" else 300)
        workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
        for precision in precisions(device):
            bf16 = precision == "bf16"
            ours, reference = [], []
            for _ in range(args.runs):  # alternate so drifts in machine load hit both sides alike
                ours.append(fer_search_images_per_s(data, device, steps, args.batch, bf16))
                reference.append(reference_images_per_s(data.train.images, data.train.labels, device, steps,
                                                        args.batch, workers, bf16))
            ours_median, reference_median = statistics.median(ours), statistics.median(reference)
            print(f"{name} {precision}: simple_cnn v2, batch {args.batch}, {steps} steps, documented augmentation, "
                  f"{args.runs} runs, torch threads {torch.get_num_threads()}, reference workers {workers}")
            print(f"  fer_search trainer   {ours_median:8.0f} images/s  (runs: {', '.join(f'{v:.0f}' for v in ours)})")
            print(f"  PIL + DataLoader     {reference_median:8.0f} images/s  "
                  f"(runs: {', '.join(f'{v:.0f}' for v in reference)})")
            print(f"  ratio                {ours_median / reference_median:8.2f}x")
            figures[f"{name}_{precision}"] = {"fer_search_images_per_s": round(ours_median),
                                              "reference_images_per_s": round(reference_median),
                                              "ratio": round(ours_median / reference_median, 2), "steps": steps,
                                              "runs": args.runs, "batch": args.batch, "reference_workers": workers}
    if figures:
        results.save("throughput", {"data": args.data, **figures}, label=results.machine_label(info))


if __name__ == "__main__":
    main()
