"""Training steps per second with and without bf16 autocast on this CPU (the `precision` option):

    python benchmarks/bf16_cpu.py [--threads 1]

Times 5 SGD steps (after 3 warm-up steps) of batch 128 on 44x44 crops for the CPU-benchmark network
(deeper_cnn with one conv per block at 32-64-128-256) and a VGG with two convs per stage, fp32 against
bf16 autocast. On CPUs without native bf16 (no AVX512-BF16 / AMX) autocast is slower, and `precision=auto`
leaves it off. The figures go to benchmarks/results/bf16_cpu-LABEL.json with the machine (results.py).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import results
from fer_search.models import create_model

NETWORKS = {
    "deeper_cnn 1x(32,64,128,256)": ("deeper_cnn", dict(widths=(32, 64, 128, 256), convs_per_block=1,
                                                       spatial_dropout=0.0, fc_width=256)),
    "vgg 2x(32,64,128,256)": ("vgg", dict(widths=(32, 64, 128, 256), convs_per_stage=2, fc_width=256, fc_layers=1)),
}


def images_per_s(arch: str, hparams: dict, bf16: bool) -> float:
    model = create_model(arch, **hparams).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(128, 1, 44, 44).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (128,))
    for step in range(8):
        if step == 3:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 5 * 128 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"threads": args.threads}
    for label, (arch, hparams) in NETWORKS.items():
        fp32, bf16 = images_per_s(arch, hparams, False), images_per_s(arch, hparams, True)
        print(f"{label:<30} fp32 {fp32:6.0f} img/s   bf16 {bf16:6.0f} img/s   ratio {bf16 / fp32:.2f}x")
        figures[label] = {"fp32_images_per_s": round(fp32), "bf16_images_per_s": round(bf16),
                          "ratio": round(bf16 / fp32, 2)}
    results.save("bf16_cpu", figures, label=results.machine_label())


if __name__ == "__main__":
    main()
