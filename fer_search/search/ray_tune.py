"""A search on Ray Tune, the path of one trial top to bottom: run_search starts Ray, puts the data set in its
object store once and runs a Tuner (Optuna's TPE through its searcher, ASHA over epochs); each trial is the
function trainable `_trainable`, which takes its device and CPU threads from the share Ray gave it, maps the
data set read-only and runs trial.py's run_trial, reporting each epoch and checkpoint to Tune.

Every Ray call of fer_search is in this file, ray_adaptations.py (what the search changes in Ray's and
Optuna's behaviour: the searcher, the ASHA variants, the stopper, the search generator, the loggers) and
ray_console.py (the console lines and where the logs go); session.py holds what this driver session was asked
for, which they all read.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import socket
from pathlib import Path

# Ray's own progress tables and TensorBoard logger are replaced by ours: set before Tune runs.
# The auto loggers also include the CSV and JSON ones that write progress.csv / result.json;
# those are passed back explicitly below.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.logger import JsonLoggerCallback  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from fer_search.data.types import FERData  # noqa: E402
from fer_search.errors import UserError  # noqa: E402
from fer_search.search import cluster_checks, code_probe, layout, reconcile, session, study, study_writes  # noqa: E402
# Experiments saved by an fer_search older than this file's split name the classes below and trial_name as
# fer_search.search.ray_tune.<name> in their pickles (tuner.pkl, the search generator's state): --resume finds
# them through these imports.
from fer_search.search.layout import NODE_KEY, THREADS_KEY, trial_name  # noqa: E402
from fer_search.search.ray_adaptations import (BudgetASHA, BudgetLedger, ExperimentOptunaSearch,  # noqa: E402
                                               HeaderKeepingCSVLogger, SearchStopper, SeriesWandbCallback,
                                               SessionSearchGenerator, TruthfulOptunaSearch)
from fer_search.search.ray_console import ConsoleReporter, route_logs, route_study_writes  # noqa: E402
from fer_search.search.sampler import SpaceSampler  # noqa: E402
from fer_search.search.settings import (Resources, SearchSettings, local_cpu_count,  # noqa: E402
                                        local_gpu_count, plan_resources)
from fer_search.search.storage import StoragePath, experiment_path, is_uri  # noqa: E402
from search_spaces import SearchSpace  # noqa: E402


# To answer the code check a node starts a Python worker (with --ship-code, after unpacking the code).
CODE_PROBE_TIMEOUT_S = 180


def run_search(spaces: list[SearchSpace], data: FERData, settings: SearchSettings, *, resume: bool = False,
               num_samples: int | None = None) -> str:
    """Run (or with resume=True, continue) experiment settings.name under settings.storage; returns its path.
    On resume, `num_samples` (if given) is the number of trials the experiment now has in all."""
    experiment = experiment_path(settings.storage, settings.name)
    path = str(experiment)
    layout.check_can_start(settings.storage, settings.name, resume=resume)
    if settings.address is None:
        # Before starting Ray: a GPU trial on a machine without one would wait forever.
        resources = plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())
    session.current.start(settings.time_budget_s, num_samples if resume else None, settings.budget_guard)
    log_file = route_logs(experiment.local_path)
    study_handlers = route_study_writes(log_file)
    try:
        if resume:
            _prepare_resume(settings.storage, settings.name)
        if settings.address is None:
            _start_local_ray(resources.cpus, resources.gpus)
        else:
            ray.init(address=settings.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR,
                     runtime_env=cluster_checks.shipped_code() if settings.ship_code else None)
        if settings.address is not None:
            resources = _check_cluster(settings, spaces)
        # The driver puts the data set into the object store once; each node fetches that one object for all of
        # its trials. (In a list: with_parameters puts its arguments, and Ray refuses to put a bare ObjectRef.)
        data_ref = ray.put(data)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, data_refs=[data_ref], checkpoint_every=settings.checkpoint_every),
            functools.partial(_trial_resources, resources.cpus_per_trial, resources.gpus_per_trial),
        )
        if resume:
            tuner = tune.Tuner.restore(experiment.path, trainable, resume_unfinished=True, resume_errored=True,
                                       storage_filesystem=experiment.fs)
        else:
            tuner = _new_tuner(trainable, spaces, settings, resources.concurrency, data.version())
        if not is_uri(settings.storage):
            reconcile.keep_tuner_state(Path(experiment.path))  # Ray has written tuner.pkl whole by now
        tuner.fit()
        session.current.flush_study_writes()
    finally:
        session.current.end()
        ray.shutdown()
        for handler in study_handlers:
            logging.getLogger(study_writes.__name__).removeHandler(handler)
        if log_file is not None:
            logging.getLogger("ray").removeHandler(log_file)
            log_file.close()
    return path


def _prepare_resume(storage: str, name: str) -> None:
    """What the resumed search settles with (reconcile.py): the study where the experiment's folder says it is
    now, and the trials Ray restores; a local experiment's trial folders that Ray forgot are marked."""
    path = f"{storage.rstrip('/')}/{name}"
    local = not is_uri(path)
    if local:
        reconcile.set_aside_unreadable_state(Path(path))
    restored = _restored_trials(path)
    trials_so_far = len(restored)
    if local:
        reconcile.recover_ray_files(Path(path), restored)
        forgotten = reconcile.forgotten_folders(Path(path), restored)
        trials_so_far += len([trial for trial in forgotten if reconcile.ran_to_an_end(trial)])
        reconcile.mark_not_resumed([trial for trial in forgotten if trial.status == layout.RUNNING])
    location = study.recorded(path) if local else None
    if location is not None:
        study.load(location)  # a study that is not there fails here, before Ray restores anything
    session.current.resumed = session.Resumed(storage, name, location, restored, trials_so_far)


def _restored_trials(path: str) -> list[reconcile.RestoredTrial]:
    """The trials in Ray's newest saved experiment state: what Tuner.restore brings back (none where Ray saved no
    state before the driver died, or cannot read it: Ray then starts the experiment afresh)."""
    try:
        trials = tune.ExperimentAnalysis(path).trials
    except ValueError:  # no saved state, or one that is not JSON
        return []
    return [reconcile.RestoredTrial(t.trial_id, int(t.config["trial_number"]), t.status, dict(t.last_result or {}))
            for t in trials]


def _check_cluster(settings: SearchSettings, spaces: list[SearchSpace]) -> Resources:
    """The checks of cluster_checks.py on the cluster's live nodes, before any trial starts (Tune would leave a
    trial that no node can hold PENDING forever). A search's own local Ray is one node that plan_resources sized."""
    nodes = [cluster_checks.Node(n["NodeID"], n["NodeManagerAddress"], n["Resources"].get("CPU", 0),
                                 n["Resources"].get("GPU", 0)) for n in ray.nodes() if n["Alive"]]
    cluster_checks.check_storage(settings.storage, len(nodes), settings.storage_shared)
    total = ray.cluster_resources()
    resources = plan_resources(settings, spaces, cpus_found=int(total.get("CPU", 0)),
                               gpus_found=int(total.get("GPU", 0)))
    cluster_checks.check_fits_a_node(resources, nodes)
    cluster_checks.check_code(code_probe.installed_code(), _code_on_nodes(nodes))
    return resources


def _code_on_nodes(nodes: list[cluster_checks.Node]) -> dict:
    """Each node's installed_code(), or why it could not be asked."""
    # By value, not as a reference to fer_search: the probe must run where fer_search is missing or differs.
    ray.cloudpickle.register_pickle_by_value(code_probe)
    probe = ray.remote(num_cpus=0)(code_probe.installed_code)
    asked = {node: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)).remote()
             for node in nodes}
    answers = {}
    for node, answer in asked.items():
        try:
            answers[node] = ray.get(answer, timeout=CODE_PROBE_TIMEOUT_S)
        except ray.exceptions.RayError as exc:  # a timeout included
            lines = str(exc).strip().splitlines()
            answers[node] = lines[-1] if lines else type(exc).__name__
    return answers


def _start_local_ray(cpus: int, gpus: int) -> None:
    """A Ray of this search's own on this machine, reachable from it only.

    address="local" starts a new instance even when RAY_ADDRESS is set or another cluster runs here
    (without it, ray.init joins that cluster and refuses num_cpus). Ray 2.60 on Linux also swaps
    127.0.0.1 for the machine's network address unless its cluster support is off, which it reads
    from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import: the module constant is switched as well, and
    the variable is passed to Ray's processes.
    """
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)


def _new_tuner(trainable, spaces: list[SearchSpace], settings: SearchSettings, concurrency: int,
               data_version: str) -> tune.Tuner:
    sampler = SpaceSampler(spaces, settings.overrides(), point_budgets=settings.point_budgets,
                           point_epochs=settings.point_epochs)
    searcher = search_algorithm(sampler, settings, concurrency)
    scheduler = BudgetASHA(sampler.scheduled_points, time_attr="training_iteration", metric=settings.objective,
                           mode="max", max_t=settings.max_epochs,
                           grace_period=min(settings.grace_period, settings.max_epochs),
                           reduction_factor=settings.reduction_factor)
    callbacks = [ConsoleReporter(settings.objective, settings.num_samples), HeaderKeepingCSVLogger(),
                 JsonLoggerCallback(), BudgetLedger()]
    if settings.wandb_project:
        callbacks.append(SeriesWandbCallback(data_version=data_version, experiment_type=settings.experiment_type,
                                             project=settings.wandb_project, group=settings.name, log_config=True))
    storage = StoragePath.of(settings.storage)  # Ray stores through the same filesystem as the rest of the files
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples,
            reuse_actors=True,  # a new trial skips the worker's start-up (importing torch) where it can
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=settings.name, storage_path=storage.path, storage_filesystem=storage.fs, verbose=0,
            callbacks=callbacks, stop=SearchStopper(),
            # Trials checkpoint on a new best, on their last epoch and periodically (trial.py). The checkpoint
            # before the newest stays too: Tune deletes an old checkpoint as soon as a new one is registered,
            # before it saves the experiment state, so a driver killed in between would resume from a
            # checkpoint that is gone.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Trials write TensorBoard files into their working directory; this copies them to storage.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            # A failed trial is restarted from its last checkpoint: a CUDA out-of-memory error or a lost
            # node is often gone by then (an error in the configuration just fails again, at once).
            failure_config=tune.FailureConfig(max_failures=settings.trial_retries),
        ),
    )


def search_algorithm(sampler: SpaceSampler, settings: SearchSettings, concurrency: int) -> SessionSearchGenerator:
    """The searcher stack of a search: Optuna's TPE (or random sampling) on the study, at most `concurrency` trials at once."""
    return SessionSearchGenerator(ConcurrencyLimiter(
        ExperimentOptunaSearch(sampler, metric=settings.objective, seed=settings.seed,
                               location=settings.study_location(), experiment=settings.name,
                               optuna_sampler=settings.optuna_sampler, startup_trials=settings.tpe_startup_trials),
        max_concurrent=concurrency))


def _trainable(config: dict, data_refs: list, checkpoint_every: int | None = None) -> None:
    from fer_search.search.trial import run_trial
    from fer_search.search.trial_files import load_checkpoint

    share = tune.get_context().get_trial_resources().required_resources
    device = _trial_device(share.get("GPU", 0.0))
    threads = _use_trial_threads(share.get("CPU", 1.0))
    data = ray.get(data_refs[0])
    # Recorded with every result: the node the trial ran on (the leaderboard shows it), the stored data
    # set it read (one object for every trial of the search), and the CPU threads it trained with.
    placement = {NODE_KEY: ray.get_runtime_context().get_node_id(), "data_object_id": data_refs[0].hex(),
                 THREADS_KEY: threads}

    def report(metrics: dict, directory: str | None) -> None:
        # Ray copies the directory to storage before report() returns, so the caller may delete it.
        tune.report({**metrics, **placement},
                    checkpoint=tune.Checkpoint.from_directory(directory) if directory else None)

    storage = tune.get_context().get_storage()
    trial_dir = StoragePath(storage.storage_filesystem, storage.trial_fs_path)
    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            resume = load_checkpoint(directory, trial_dir)
    run_trial(config, data, report=report, log_dir=os.getcwd(), trial_dir=trial_dir, resume=resume,  # cwd: trial's own
              device=device, checkpoint_every=checkpoint_every)


def trial_threads(cpu_share: float) -> int:
    """Torch threads of a trial that Ray gave `cpu_share` CPUs: its whole CPUs, and one for a share below one."""
    return max(1, math.floor(cpu_share + 1e-9))


def _use_trial_threads(cpu_share: float) -> int:
    """Set torch's thread count from the trial's CPU share. Ray sets OMP_NUM_THREADS from the share only where the
    environment does not set it already, so torch would otherwise start as many threads as that says (or as there
    are cores) and trials sharing a machine would fight over them."""
    import torch

    torch.set_num_threads(trial_threads(cpu_share))
    return torch.get_num_threads()


def _trial_device(gpu_share: float) -> str:
    """The device of a trial that Ray gave `gpu_share` of a GPU: cuda with a share, else cpu.

    Ray 2.60 no longer hides the GPUs from actors that asked for none, so "auto" would put a CPU trial
    on a GPU given to others. Such a trial hides them itself, before anything initialises CUDA. A trial
    with a share never falls back to CPU: the trainer refuses "cuda" where CUDA is not usable. Its share
    also caps its CUDA memory, so one trial that outgrows it fails (and is retried) alone instead of
    starving the trials beside it.
    """
    if not gpu_share:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"Ray gave this trial {gpu_share:g} GPU, but CUDA is not usable on {socket.gethostname()}; "
                        "check that node's NVIDIA driver and torch build")
    if gpu_share < 1:
        torch.cuda.set_per_process_memory_fraction(gpu_share)
    return "cuda"


def _trial_resources(cpus: float, gpus_by_family: dict[str, float], config: dict) -> tune.PlacementGroupFactory:
    return tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus_by_family[config["family"]]}])
