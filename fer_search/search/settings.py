"""Run-wide search settings and the checks that need no Ray: storage, resources.

The resource check runs before any trial starts: Ray leaves a trial that asks for a GPU the cluster
lacks PENDING forever, so a mismatch must fail here, at once, with the fix in the message (that a
trial fits on one node is checked once Ray's nodes are known: cluster_checks.py).
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fer_search.errors import UserError

if TYPE_CHECKING:  # the command line reads the defaults below while building its help: no pyarrow or optuna for that
    from fer_search.search.study import StudyLocation
    from search_spaces import SearchSpace


# ViT at 224x224 (mode=resized) is by far the largest model: more than two trials on one GPU is
# asking for out-of-memory errors, so a smaller share is warned about.
VIT_LEAST_GPU_SHARE = 0.5


@dataclass
class SearchSettings:
    storage: str  # absolute local path, or a URI Ray supports (s3://, gs://, ...)
    name: str
    num_samples: int = 20
    max_epochs: int = 20
    # Epochs before ASHA may stop a trial [a third of max_epochs]: a trial on a one-cycle or cosine schedule
    # scores low until its learning rate comes down, and must not be judged at epoch 2.
    grace_period: int | None = None
    reduction_factor: int = 3
    # Trials with a result (documented points included) before TPE models them; until then it samples at
    # random. Optuna's default, 10, is more than a --smoke search has.
    tpe_startup_trials: int = 10
    metric: str = "val_acc"
    seed: int = 0
    cpus: int | None = None  # None: every CPU (of this machine, or of the cluster)
    gpus: int | None = None  # None: every visible GPU
    gpus_per_trial: float | None = None  # None: the family's default fraction
    cpus_per_trial: float = 1  # below 1 shares a core between trials (each trains on one thread)
    address: str | None = None  # an existing Ray cluster ("auto" or HOST:PORT)
    storage_shared: bool = False  # --storage-shared: a local --storage is the same shared folder on every node
    ship_code: bool = False  # --ship-code: send this checkout's trial packages to the cluster's nodes
    time_budget_s: float | None = None
    wandb_project: str | None = None
    max_train_images: int = 0  # cap per epoch (smoke runs); 0 = all
    fixed: dict = field(default_factory=dict)  # `run --set KEY=VALUE`: options every trial gets
    # A documented point that names its own epochs keeps them over max_epochs and runs to its own end
    # (ASHA does not stop it); False (--smoke) cuts its epochs to max_epochs, which it still runs to their end.
    point_budgets: bool = True
    # A planned budget's documented points that fill their own lane ("family/point" -> epochs, plan.py): they run
    # those epochs to their end, as a point with its own epochs does.
    point_epochs: dict = field(default_factory=dict)
    experiment_type: str = "search"  # W&B tag: "search" or "reproduce"
    trial_retries: int = 2  # restarts of a failed trial from its last checkpoint (CUDA out of memory, a lost node)
    # A trial checkpoints on a new best and its last epoch, and every N epochs (None: at most once a minute).
    checkpoint_every: int | None = None
    study: StudyLocation | None = None  # None: the experiment folder's own study (study.db; shared: study.journal)
    # A planned budget (budget.py): per trial kind ("family/point", "tpe") the seconds and epochs of its whole
    # schedule, and an --epochs-budget in trial epochs; a trial starts only where its schedule fits.
    budget_guard: dict | None = None
    optuna_sampler: str = "tpe"  # `run --sampler`: "tpe", or "random" (the baseline of benchmarks/search_value.py)

    def __post_init__(self):
        if self.grace_period is None:
            self.grace_period = max(1, self.max_epochs // 3)

    @property
    def objective(self) -> str:
        """What ASHA and TPE compare: the best value of the metric so far, i.e. the kept checkpoint's."""
        return f"best_{self.metric}"

    def study_location(self) -> StudyLocation:
        from fer_search.search.study import default_location

        return self.study or default_location(self.storage, self.name, shared=self.storage_shared)

    def overrides(self) -> dict:
        """Trainer options every trial gets, whatever its space says (epochs: but see point_budgets)."""
        values = {"epochs": self.max_epochs, "metric": self.metric, "seed": self.seed}
        if self.max_train_images:
            values["max_train_images"] = self.max_train_images
        return {**values, **self.fixed}


@dataclass
class Resources:
    cpus: int
    gpus: int
    cpus_per_trial: float
    gpus_per_trial: dict[str, float]  # per family
    concurrency: int


def plan_resources(settings: SearchSettings, spaces: list[SearchSpace], *, cpus_found: int,
                   gpus_found: int) -> Resources:
    gpus = gpus_found if settings.gpus is None else settings.gpus
    if gpus > gpus_found:
        hint = "use --gpus 0 to run on CPU" if gpus_found == 0 else f"use --gpus {gpus_found} or fewer"
        raise UserError(f"asked for {gpus} GPU(s), found {gpus_found}; {hint}")
    if gpus == 0 and settings.gpus_per_trial:
        raise UserError(f"--gpus-per-trial {settings.gpus_per_trial:g} asks for a GPU, but the search has none "
                        f"(found {gpus_found}); drop --gpus-per-trial to run on CPU")
    per_trial = {s.family: (settings.gpus_per_trial or s.gpus_per_trial) if gpus else 0.0 for s in spaces}
    for family, need in per_trial.items():
        if need > 1:
            raise UserError(f"a {family} trial asks for {need:g} GPUs: trials train on one GPU; pass "
                            "--gpus-per-trial 1 or less")
        if family == "vit" and 0 < need < VIT_LEAST_GPU_SHARE:
            warnings.warn(f"--gpus-per-trial {need:g} puts {math.floor(1 / need)} ViT trials on one GPU; at 224x224 "
                          "(mode=resized) they may run out of its memory (each trial's share caps its memory)",
                          stacklevel=2)
        if need > gpus:
            raise UserError(f"a {family} trial asks for {need:g} GPU(s) but the search has {gpus}; "
                            f"pass --gpus-per-trial with at most {gpus}")
    cpus = cpus_found if settings.cpus is None else settings.cpus
    if not 1 <= cpus <= cpus_found:
        raise UserError(f"--cpus {cpus}: between 1 and the {cpus_found} CPU(s) found")
    if settings.cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {settings.cpus_per_trial:g} is more than the search's {cpus} CPU(s)")
    concurrency = math.floor(cpus / settings.cpus_per_trial + 1e-9)
    if gpus:
        concurrency = min(concurrency, math.floor(gpus / min(per_trial.values()) + 1e-9))
    return Resources(cpus, gpus, settings.cpus_per_trial, per_trial, concurrency)


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def local_cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_storage(storage: str) -> str:
    """A URI stays as it is (Ray checks it); a local folder becomes absolute (Ray needs that) and must be writable."""
    from fer_search.search.storage import is_uri

    if is_uri(storage):
        return storage
    path = Path(storage).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"storage folder {path} is not writable ({exc.strerror or exc}); pass --storage DIR") from None
    return str(path)
