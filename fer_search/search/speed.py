"""How fast this machine trains a configuration, measured with the trainer itself, and cached.

A measurement runs `train()` (the same model, batch, augmentation, precision, EMA and TTA a trial
runs) for two short epochs of MEASURED_STEPS steps on random 48x48 images: the first warms up (oneDNN
and cuDNN set up their operators on first use), the second is timed. It gives the training
images/s, the evaluation images/s (validation and test prediction, with the configuration's TTA
views), the seconds a search trial spends writing its checkpoint after an epoch, and the first
epoch's extra seconds. With several trials at once (a Layout of k trials x t threads), k processes
measure together, the timed epochs started at the same moment, and the slowest one counts.

Results are cached in a JSON file (the experiment's `speed.json`) per machine (CPU model, the ISA
PyTorch uses, GPU), network (architecture and its shape hyperparameters, batch size, crop, precision,
TTA, EMA, Mixup/CutMix) and layout. No Ray here.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import queue
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from fer_search.errors import UserError

MEASURED_STEPS = 6  # timed training steps (after as many warm-up steps)
EVAL_IMAGES = 512  # images whose prediction is timed
CACHE_FILE = "speed.json"
MEASURE_TIMEOUT_S = 900  # per network, for the processes measuring together
# Trial labels and settings that do not change what a step computes, or that a measurement must not use
# (pretrained weights to load, the overfit check's subset).
_NOT_MEASURED = ("family", "point", "trial_number", "split_seed", "pretrained", "overfit_images", "max_train_images",
                 "epochs", "patience")
_ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@dataclass(frozen=True)
class Layout:
    """Trials running at once, and the torch threads of each."""

    trials: int
    threads: int
    device: str = "cpu"  # "cpu" or "cuda"

    def describe(self) -> str:
        trials = f"{self.trials} trial{'s' if self.trials > 1 else ''} at once"
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''} each" if self.trials > 1 else \
            f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{trials}, {threads}" + (" on the GPU" if self.device == "cuda" else "")


@dataclass(frozen=True)
class Speed:
    """One trial's speed on a layout (every trial of the layout running)."""

    train_images_per_s: float
    eval_images_per_s: float  # prediction of validation and test images, TTA views included
    checkpoint_s: float  # a search trial's checkpoint after each epoch
    warmup_s: float  # the first epoch's extra seconds

    def epoch_seconds(self, train_images: int, eval_images: int) -> float:
        return train_images / self.train_images_per_s + eval_images / self.eval_images_per_s + self.checkpoint_s


def network_key(config: dict[str, Any]) -> dict[str, Any]:
    """What decides how fast a configuration trains: its network's shape and the step's work."""
    train_config = _train_config(config)
    shape = {k: _plain(v) for k, v in sorted(train_config.model.items()) if "drop" not in k}  # rates cost nothing
    return {"arch": train_config.arch, "model": shape, "batch_size": train_config.batch_size,
            "crop": train_config.crop, "precision": train_config.precision, "tta": train_config.tta,
            "ema": train_config.ema > 0, "mix": train_config.mixup > 0 or train_config.cutmix > 0,
            "compile": train_config.compile}


def describe_network(config: dict[str, Any]) -> str:
    """"deeper_cnn widths=[32, 64, 128, 256] ..., batch 128, crop 44": a network as the plan names it."""
    key = network_key(config)
    shape = " ".join(f"{k}={v}" for k, v in key["model"].items())
    return f"{key['arch']} {shape}, batch {key['batch_size']}" + (f", crop {key['crop']}" if key["crop"] else "")


def machine_key() -> dict[str, Any]:
    import torch

    model = platform.processor() or platform.machine()
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "isa_env": {key: os.environ[key] for key in _ISA_ENV if key in os.environ},
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


class SpeedCache:
    """Measured speeds in a JSON file, per machine, network and layout (None: kept in memory only)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: list[dict[str, Any]] = []
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text())["entries"]
            except (json.JSONDecodeError, KeyError, TypeError):
                self.entries = []  # a torn or foreign file: measured again
        self._machine = machine_key()

    def lookup(self, config: dict[str, Any], layout: Layout) -> Speed | None:
        key = self._key(config, layout)
        for entry in self.entries:
            if {k: entry.get(k) for k in key} == key:
                return Speed(**entry["speed"])
        return None

    def store(self, config: dict[str, Any], layout: Layout, speed: Speed) -> None:
        self.entries.append({**self._key(config, layout), "speed": asdict(speed),
                             "measured": datetime.datetime.now().isoformat(timespec="seconds")})
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"entries": self.entries}, indent=2))
            tmp.replace(self.path)

    def _key(self, config: dict[str, Any], layout: Layout) -> dict[str, Any]:
        return {"machine": self._machine, "network": network_key(config), "layout": asdict(layout)}


def speeds(configs: list[dict[str, Any]], layout: Layout, cache: SpeedCache,
           say: Callable[[str], None] = print) -> list[Speed]:
    """The speed of each configuration on `layout`: from the cache, or measured now (once per network)."""
    missing: dict[str, dict[str, Any]] = {}
    for config in configs:
        if cache.lookup(config, layout) is None:
            missing.setdefault(json.dumps(network_key(config), sort_keys=True), config)
    if missing:
        say(f"measuring {len(missing)} network(s) with {layout.describe()} (a few steps each) ...")
        for config, speed in zip(missing.values(), measure(list(missing.values()), layout)):
            cache.store(config, layout, speed)
            say(f"  {describe_network(config)}: {speed.train_images_per_s:,.0f} images/s training, "
                f"{speed.eval_images_per_s:,.0f} images/s predicting")
    return [cache.lookup(config, layout) for config in configs]


def measure(configs: list[dict[str, Any]], layout: Layout) -> list[Speed]:
    """Measure each configuration with layout.trials processes at once (this process alone for one trial)."""
    if layout.trials == 1:
        return [measure_here(config, threads=layout.threads, device=layout.device) for config in configs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter each, as a trial's worker
    barrier, results = context.Barrier(layout.trials), context.Queue()
    workers = [context.Process(target=_measure_in_worker, daemon=True,
                               args=(configs, layout.threads, layout.device, barrier, results))
               for _ in range(layout.trials)]
    for worker in workers:
        worker.start()
    found: dict[int, list[Speed]] = {}
    try:
        for _ in range(layout.trials * len(configs)):
            index, outcome = results.get(timeout=MEASURE_TIMEOUT_S)
            if isinstance(outcome, str):
                raise UserError(f"measuring {describe_network(configs[index])} with {layout.describe()} failed: "
                                f"{outcome}")
            found.setdefault(index, []).append(Speed(**outcome))
    except queue.Empty:
        raise UserError(f"measuring the networks' speed with {layout.describe()} took over {MEASURE_TIMEOUT_S} s; "
                        "is the machine busy?") from None
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
    return [_slowest(found[index]) for index in range(len(configs))]


def measure_here(config: dict[str, Any], *, threads: int, device: str, barrier=None) -> Speed:
    """Two short epochs of `config` in this process on `threads` torch threads; the second is timed."""
    import numpy as np
    import torch

    from fer_search.data.types import FERData, LoadReport, Split
    from fer_search.search.storage import StoragePath
    from fer_search.search.trial_files import TrialFiles
    from fer_search.training import train

    train_config = _train_config(config)
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:  # every class present: class weights and oversampling need them
        return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7,
                     np.array([str(i) for i in range(n)]))

    data = FERData("speed", "random", split(train_config.batch_size * MEASURED_STEPS), split(EVAL_IMAGES), None,
                   LoadReport())
    checkpoint_s = []

    def on_epoch(metrics: dict, state) -> None:
        if state.epoch == 1 and barrier is not None:
            barrier.wait(timeout=MEASURE_TIMEOUT_S)  # the timed epochs of every process start together
        if state.epoch == 2:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="fer_search_speed_") as directory:
                # A checkpoint as a trial writes it, with its best epoch's folder (the costliest case).
                files = TrialFiles(StoragePath.of(directory), data, config, train_config.metric)
                (Path(directory) / "checkpoint").mkdir()
                files.write_checkpoint(Path(directory) / "checkpoint", state, None)
            checkpoint_s.append(time.perf_counter() - started)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        history = train(train_config, data, device=device, on_epoch=on_epoch, progress=False).history
    finally:
        torch.set_num_threads(previous)
    first, timed = history
    train_s = len(data.train) / timed["images_per_s"]
    return Speed(train_images_per_s=timed["images_per_s"],
                 eval_images_per_s=EVAL_IMAGES / max(timed["epoch_seconds"] - train_s, 1e-6),
                 checkpoint_s=checkpoint_s[0], warmup_s=max(0.0, first["epoch_seconds"] - timed["epoch_seconds"]))


def _measure_in_worker(configs, threads: int, device: str, barrier, results) -> None:
    """A measuring process: every configuration in turn, in step with the others (the barrier)."""
    for index, config in enumerate(configs):
        try:
            results.put((index, asdict(measure_here(config, threads=threads, device=device, barrier=barrier))))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which names the network
            barrier.abort()  # the others stop waiting for this one
            results.put((index, f"{type(exc).__name__}: {exc}"))
            return


def _train_config(config: dict[str, Any]):
    from fer_search.training import TrainConfig

    return TrainConfig.from_flat(_measured_config(config))


def _measured_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as measured: two epochs of every step's work, whatever its learning rate (a rate that
    diverges would stop the measurement; speed does not depend on it)."""
    measured = {k: v for k, v in config.items() if k not in _NOT_MEASURED}
    return {**measured, "epochs": 2, "lr": 1e-4, "seed": 0}


def _slowest(speeds: list[Speed]) -> Speed:
    return Speed(min(s.train_images_per_s for s in speeds), min(s.eval_images_per_s for s in speeds),
                 max(s.checkpoint_s for s in speeds), max(s.warmup_s for s in speeds))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
