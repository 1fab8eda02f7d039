"""Search throughput: trials per hour on CPU, and on a GPU how aggregate training images/s grows as
1, 2, 4, 8 small-CNN trials share it through fractional GPUs (the goal: 4 trials >= 3x one trial).

    python benchmarks/search_throughput.py [--data synthetic|PATH] [--skip-cpu] [--skip-gpu]

CPU: a search of `--cpu-trials` small simple_cnn trials (2 epochs of 1024 images each) on every core, one CPU per trial; trials/hour = trials / the Tuner's wall time, Ray's start
included. GPU: for k in 1, 2, 4, 8, k identical simple_cnn v2 trials with 1/k GPU each;
aggregate = the sum over trials of each one's median per-epoch training images/s (measured inside
the trainer while all k run). Without a CUDA GPU the GPU part says so and is skipped.
The figures go to benchmarks/results/search_throughput-LABEL.json with the machine (results.py).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import results
from fer_search.data import load_data
from fer_search.search import layout
from fer_search.search.ray_tune import run_search
from fer_search.search.settings import SearchSettings, local_cpu_count, local_gpu_count
from search_spaces import load_space, validate

V2 = {"arch": "simple_cnn", "widths": [32, 64], "kernel_size": 5, "fc_width": 128, "dropout_before_fc": True,
      "batch_norm": True, "dropout": 0.4, "augment": 1.0, "optimizer": "adam", "lr": 5e-4,
      "weight_decay": 1e-4, "batch_size": 64, "patience": 0}


def cpu_trials_per_hour(data, trials: int) -> dict:
    with tempfile.TemporaryDirectory() as storage:
        settings = SearchSettings(storage=storage, name="cpu", num_samples=trials, max_epochs=2, grace_period=2,
                                  max_train_images=1024, gpus=0, point_budgets=False)  # points cut to 2 epochs too
        started = time.perf_counter()
        run_search([load_space("simple_cnn")], data, settings)
        seconds = time.perf_counter() - started
        ended = sum(t.status in (layout.COMPLETED, layout.STOPPED) for t in layout.list_trials(storage, "cpu"))
    print(f"\nCPU: {ended} simple_cnn trials (2 epochs x 1024 images) on {local_cpu_count()} core(s) "
          f"in {seconds:.0f} s -> {ended * 3600 / seconds:.0f} trials/hour (Ray start-up included)")
    return {"cpu_trials": ended, "cpu_cores": local_cpu_count(), "cpu_seconds": round(seconds),
            "cpu_trials_per_hour": round(ended * 3600 / seconds)}


def gpu_scaling(data, epochs: int) -> dict:
    if local_gpu_count() == 0:
        print("\nGPU: no CUDA GPU visible; skipping the shared-GPU measurement")
        return {}
    space = validate({"family": "simple_cnn", "fixed": V2, "points": {"v2": {}}, "params": {}}, "simple_cnn v2")
    rows = []
    for k in (1, 2, 4, 8):
        with tempfile.TemporaryDirectory() as storage:
            settings = SearchSettings(storage=storage, name=f"gpu{k}", num_samples=k, max_epochs=epochs,
                                      grace_period=epochs, gpus=1, gpus_per_trial=1 / k,
                                      cpus_per_trial=max(1, min(2, local_cpu_count() // k)))
            run_search([space], data, settings)
            per_trial = [float(np.median(t.epoch_table["images_per_s"].iloc[1:]))  # epoch 1 includes warm-up
                         for t in layout.list_trials(storage, f"gpu{k}")]
        rows.append((k, sum(per_trial), per_trial))
    single = rows[0][1]
    print(f"\nGPU: simple_cnn v2 trials sharing one GPU ({epochs} epochs of {len(data.train):,} images each)")
    print(f"{'trials':>6} {'aggregate img/s':>16} {'x one trial':>12}   per trial")
    for k, total, per_trial in rows:
        print(f"{k:>6} {total:>16,.0f} {total / single:>12.2f}   " + ", ".join(f"{v:,.0f}" for v in per_trial))
    return {"gpu_epochs": epochs, "gpu_sharing": [
        {"trials": k, "aggregate_images_per_s": round(total), "vs_one_trial": round(total / single, 2),
         "per_trial_images_per_s": [round(v) for v in per_trial]} for k, total, per_trial in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="data set; throughput does not depend on it [%(default)s]")
    parser.add_argument("--cpu-trials", type=int, default=8)
    parser.add_argument("--gpu-epochs", type=int, default=4)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-gpu", action="store_true")
    args = parser.parse_args()
    data = load_data(args.data, progress=False)
    figures = {"data": args.data}
    if not args.skip_cpu:
        figures.update(cpu_trials_per_hour(data, args.cpu_trials))
    if not args.skip_gpu:
        figures.update(gpu_scaling(data, args.gpu_epochs))
    results.save("search_throughput", figures, label=results.machine_label())


if __name__ == "__main__":
    main()
