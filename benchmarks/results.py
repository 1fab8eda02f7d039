"""Where every benchmark's figures go: `benchmarks/results/NAME.json`, with what measured them.

Each file holds the figures, the command that printed them, the commit it ran at (and whether the
working tree had changes), the date, and the machine: CPU model, ISA flags that matter for training
speed, cores, the instruction set PyTorch actually used (an `ONEDNN_MAX_CPU_ISA` / `ATEN_CPU_CAPABILITY`
restriction shows here, not in the CPU's flags), native bf16, and the GPU if any. The README quotes
these files, so a figure always names the machine it came from.

From Python: `results.save("cpu_train", {"test_acc": 0.64}, label=machine_label())`.
From a shell script: `python benchmarks/results.py NAME [--label auto] key=value ... [--json FILE ...]`
(`--json` merges a file's top-level keys, e.g. `evaluate --json` output; values are parsed as JSON
where they can be, else kept as text).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = RESULTS_DIR.parent.parent
# The CPU flags that decide how fast our networks train (vector width, bf16/AMX matrix units).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "asimd")
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cpu_description() -> dict[str, Any]:
    """Model, speed-relevant ISA flags and usable cores of this machine's CPU (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "isa_flags": [f for f in SPEED_FLAGS if f in flags], "cores": cores}


def torch_description() -> dict[str, Any]:
    """What PyTorch makes of the CPU under the current environment, and the GPU if any."""
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "threads": torch.get_num_threads(),
        "isa_env": {key: os.environ[key] for key in ISA_ENV if key in os.environ},
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def machine() -> dict[str, Any]:
    return {"cpu": cpu_description(), **torch_description(), "python": platform.python_version()}


def machine_label(info: dict[str, Any] | None = None) -> str:
    """A short name for the kind of machine a figure is for: "cuda", "cpu-bf16" (native bf16, as the CI
    CPU) or "cpu-avx2" (no bf16; this project's emulation of a user's CPU); results files are named by it."""
    info = info or machine()
    if info["gpu"]:
        return "cuda"
    if info["native_bf16"]:
        return "cpu-bf16"
    return f"cpu-{info['cpu_capability'].lower()}"


def describe(info: dict[str, Any]) -> str:
    """One line naming the machine, to print beside a figure."""
    cpu = info["cpu"]
    text = (f"{cpu['model']}, {cpu['cores']} cores, flags {' '.join(cpu['isa_flags']) or 'none of note'}; "
            f"PyTorch uses {info['cpu_capability']}, native bf16 {'yes' if info['native_bf16'] else 'no'}")
    if info["isa_env"]:
        text += " (restricted: " + " ".join(f"{k}={v}" for k, v in info["isa_env"].items()) + ")"
    if info["gpu"]:
        text += f"; GPU {info['gpu']}"
    return text


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def results_dir(directory: Path | None = None) -> Path:
    """Where results files go: `directory`, else $FER_SEARCH_RESULTS_DIR, else benchmarks/results/."""
    return Path(directory or os.environ.get("FER_SEARCH_RESULTS_DIR") or RESULTS_DIR)


def save(name: str, figures: dict[str, Any], *, label: str | None = None, command: list[str] | None = None,
         directory: Path | None = None) -> Path:
    """Write benchmarks/results/NAME[-LABEL].json and print where; returns the path."""
    info = machine()
    stem = f"{name}-{label}" if label else name
    path = results_dir(directory) / f"{stem}.json"
    record = {"name": name, "label": label, "figures": figures,
              "command": command if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]],
              **_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "machine_text": describe(info)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"results: {path} ({describe(info)})", flush=True)
    return path


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a benchmark's figures to benchmarks/results/NAME.json")
    parser.add_argument("name")
    parser.add_argument("figures", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--label", default="auto", help="suffix naming the machine kind; 'auto' from this machine, "
                                                        "'' for none [%(default)s]")
    parser.add_argument("--json", action="append", default=[], metavar="FILE", help="merge this file's keys")
    parser.add_argument("--command", help="the command that printed the figures [the caller's]")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    for file in args.json:
        figures.update(json.loads(Path(file).read_text()))
    for item in args.figures:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"figure {item!r}: expected KEY=VALUE")
        figures[key] = _parse_value(value)
    label = machine_label() if args.label == "auto" else (args.label or None)
    save(args.name, figures, label=label, command=args.command.split() if args.command else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
