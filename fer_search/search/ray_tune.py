"""Every Ray call of fer_search: the trainable, the Optuna searcher, the scheduler, the console reporter,
the W&B logger, the Tuner, the checks on a cluster's nodes.

A search is a Ray Tune Tuner with OptunaSearch (TPE, seeded; the documented points enqueued first; the
study in its database) and ASHA over epochs (`training_iteration`), which lets a documented point with
its own budget run to its end. The driver decodes the data set once and puts it in Ray's object store;
every trial, on any node, maps the same arrays read-only.
"""
from __future__ import annotations

import copy
import csv
import functools
import json
import logging
import math
import os
import pickle
import pickletools
import re
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

# Ray's own progress tables and TensorBoard logger are replaced by ours: set before Tune runs.
# The auto loggers also include the CSV and JSON ones that write progress.csv / result.json;
# those are passed back explicitly below.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"

import optuna  # noqa: E402
import pyarrow.fs  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.air.integrations.wandb import WandbLoggerCallback  # noqa: E402
from ray.air.constants import EXPR_PROGRESS_FILE  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from fer_search.data.types import FERData  # noqa: E402
from fer_search.errors import UserError  # noqa: E402
from fer_search.search import cluster_checks, code_probe, layout, reconcile, study, study_writes  # noqa: E402
from fer_search.search.guard import StartGuard  # noqa: E402
from fer_search.search.layout import (DIVERGED_BY, ERROR_FILE, FINISHED_KEY, NODE_KEY, THREADS_KEY,  # noqa: E402
                                      diverged_line, error_line, recorded_results)
from fer_search.search.sampler import TPE_POINT, SpaceSampler  # noqa: E402
from fer_search.search.settings import (Resources, SearchSettings, local_cpu_count,  # noqa: E402
                                        local_gpu_count, plan_resources)
from fer_search.search.storage import StoragePath, experiment_path  # noqa: E402
from search_spaces import SearchSpace  # noqa: E402


# To answer the code check a node starts a Python worker (with --ship-code, after unpacking the code).
CODE_PROBE_TIMEOUT_S = 180
# Ray's saved state, one file of each per driver session: the trials, and the search generator's counts.
EXPERIMENT_STATE_FILES, SEARCH_GENERATOR_STATE_FILES = "experiment_state-*.json", "search_gen_state-*.json"


def run_search(spaces: list[SearchSpace], data: FERData, settings: SearchSettings, *, resume: bool = False,
               num_samples: int | None = None) -> str:
    """Run (or with resume=True, continue) experiment settings.name under settings.storage; returns its path.
    On resume, `num_samples` (if given) is the number of trials the experiment now has in all."""
    experiment = experiment_path(settings.storage, settings.name)
    path = str(experiment)
    started = tune.Tuner.can_restore(experiment.path, storage_filesystem=experiment.fs)
    if resume and not started:
        raise UserError(f"nothing to resume at {path}: no search was started there (check --storage and --name)")
    if not resume and started:
        raise UserError(f"experiment {path} exists already; add --resume to continue it, or pick another --name")
    if settings.address is None:
        # Before starting Ray: a GPU trial on a machine without one would wait forever.
        resources = plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())
    _session.start(settings.time_budget_s, num_samples if resume else None, settings.budget_guard)
    log_file = _route_logs(experiment.local_path)
    study_handlers = _route_study_writes(log_file)
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
            tuner = _new_tuner(trainable, spaces, settings, resources.concurrency, data.fingerprint())
        tuner.fit()
        _session.flush_study_writes()
    finally:
        _session.end()
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
    local = "://" not in path
    if local:
        _set_aside_unreadable_state(Path(path))
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
    _session.resumed = Resumed(storage, name, location, restored, trials_so_far)


def _restored_trials(path: str) -> list[reconcile.RestoredTrial]:
    """The trials in Ray's newest saved experiment state: what Tuner.restore brings back (none where Ray saved no
    state before the driver died, or cannot read it: Ray then starts the experiment afresh)."""
    try:
        trials = tune.ExperimentAnalysis(path).trials
    except ValueError:  # no saved state, or one that is not JSON
        return []
    return [reconcile.RestoredTrial(t.trial_id, int(t.config["trial_number"]), t.status, dict(t.last_result or {}))
            for t in trials]


def _set_aside_unreadable_state(experiment: Path) -> None:
    """Ray copies its saved state into the folder file by file, overwriting in place: a driver killed during the
    copy can leave the newest experiment or search-generator state cut short, and Ray would then start the whole
    experiment afresh. Such a file is renamed, so that Ray restores the one before it (reconcile.py settles the
    rest). The searcher's own state is read with the same care (_saved_searcher_state)."""
    for pattern, readable in ((EXPERIMENT_STATE_FILES, _is_json), (SEARCH_GENERATOR_STATE_FILES, _is_pickle)):
        saved = sorted(experiment.glob(pattern))
        if saved and not readable(saved[-1].read_bytes()):
            saved[-1].rename(saved[-1].with_suffix(".unreadable"))
            logging.getLogger("ray.tune").warning(f"{saved[-1].name} was cut short (the driver was killed while Ray "
                                                  "saved it): resuming from Ray's state before it")


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:  # JSON, or its UTF-8, cut short
        return False
    return True


def _is_pickle(data: bytes) -> bool:
    """Whether data is a whole pickle (read opcode by opcode, nothing is built)."""
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError:
        return False
    return True


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
    cluster_checks.check_code(code_probe.code_fingerprint(), _code_on_nodes(nodes))
    return resources


def _code_on_nodes(nodes: list[cluster_checks.Node]) -> dict:
    """Each node's code_fingerprint(), or why it could not be asked."""
    # By value, not as a reference to fer_search: the probe must run where fer_search is missing or differs.
    ray.cloudpickle.register_pickle_by_value(code_probe)
    probe = ray.remote(num_cpus=0)(code_probe.code_fingerprint)
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


@dataclass
class Resumed:
    """What a --resume of this driver session goes on from (reconcile.py settles the rest with it)."""
    storage: str  # where the experiment folder is now (it may have been moved or copied there)
    name: str
    study: study.StudyLocation | None  # where its study is now (None: where its searcher's saved state says)
    restored: list[reconcile.RestoredTrial]  # the trials Ray restores
    trials_so_far: int  # the trials it has made: the restored ones, and those that ended in its folder


class _Session:
    """What this driver session was asked for. Ray pickles the stopper and the search generator with
    the experiment and restores them on --resume; they read these values, not pickled copies, so a
    resumed search runs under the time budget given now, in the folder and with the study where they are now."""

    deadline: float | None = None  # time.time() after which running trials stop at their next result
    num_samples: int | None = None  # on resume: the trials the experiment now has in all (it may grow)
    ran_out = False  # whether the last search ended with its time budget spent
    not_started: list[str] = []  # trials the spent budget ended before they started (BudgetASHA)
    guard: StartGuard | None = None  # a planned budget (guard.py): a trial starts only where its schedule fits
    resumed: Resumed | None = None  # None: a new search
    searcher: TruthfulOptunaSearch | None = None  # the searcher of this search, once it has opened its study

    def start(self, budget_s: float | None, num_samples: int | None, guard: dict | None = None) -> None:
        self.deadline = time.time() + budget_s if budget_s else None
        self.num_samples = num_samples
        self.ran_out = False
        self.not_started = []
        self.guard = StartGuard(guard) if guard else None

    def flush_study_writes(self) -> None:
        """At the search's end: what still waits is said (the next --resume writes it)."""
        waiting = self.searcher.flush_writes() if self.searcher is not None else 0
        if waiting:
            print(f"warning: the study database did not answer: {waiting} write(s) of trial results wait; "
                  "`run --resume` writes them", file=sys.stderr, flush=True)

    def end(self) -> None:
        """Nothing of a finished search applies to the next one in this process (tests run several)."""
        self.ran_out = budget_spent()
        self.deadline = self.num_samples = self.guard = self.resumed = self.searcher = None


_session = _Session()


def budget_spent() -> bool:
    """Whether the running search's --time-budget (or --epochs-budget) has run out."""
    if _session.deadline is not None and time.time() >= _session.deadline:
        return True
    return _session.guard is not None and _session.guard.spent()


def budget_ran_out() -> bool:
    """Whether the last search in this process ended because its --time-budget ran out."""
    return _session.ran_out


def trials_not_started() -> list[str]:
    """The trials of the last search in this process that its spent time budget ended before they started."""
    return list(_session.not_started)


class SearchStopper(tune.Stopper):
    """Ends a trial at the result that says the trainer finished it (or that it diverged), and every
    running trial at its next result once the time budget is spent.

    Both go through Tune's STOP decision, so the trial's last result is written with `done`, and the
    scheduler, the searcher (Optuna) and the callbacks (console, W&B) all see the trial end. Ray's own
    time_budget_s instead stops trials behind their backs: none of them hears of it. A trial whose
    function simply returns is not told to them either (Tune only counts a duplicate result).
    """

    def __call__(self, trial_id: str, result: dict) -> bool:
        return FINISHED_KEY in result or budget_spent()

    def stop_all(self) -> bool:
        return False  # running trials end one by one through __call__; the searcher stops creating new ones


class SessionSearchGenerator(SearchGenerator):
    """Tune's search generator, which on --resume forgets that a spent time budget finished it, and
    creates trials up to this session's number (`run --resume --num-samples N` extends a search)."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._finished = False  # the searcher says FINISHED again if this session's budget runs out
        if _session.num_samples:
            self._total_samples = _session.num_samples
        if _session.resumed is not None:
            _count_restored_trials(self, _session.resumed.restored, _session.resumed.trials_so_far)
            _new_trials_where_the_folder_is(self, _session.resumed)


def _new_trials_where_the_folder_is(generator: SearchGenerator, resumed: Resumed) -> None:
    """Tune restores a moved or copied experiment's trials where its folder is now, but makes new trials with the
    storage saved in the generator's experiment, i.e. where the folder was: they would check their storage there
    and fail (moved), or write their checkpoints into the original (copied)."""
    if generator._experiment is None:  # it has made no trial yet
        return
    storage = copy.copy(generator._experiment.spec["storage"])
    storage.storage_filesystem, storage.storage_fs_path = pyarrow.fs.FileSystem.from_uri(resumed.storage)
    storage.experiment_dir_name = resumed.name
    generator._experiment.spec["storage"] = storage


def _count_restored_trials(generator: SearchGenerator, restored: list[reconcile.RestoredTrial],
                           trials_so_far: int) -> None:
    """--resume: the trials made so far, and those the concurrency limiter counts as running, are the ones Ray
    restores, whatever the wrappers' own saved state says (Ray saves it apart from the trials, and a killed
    driver can leave the two from different snapshots). An errored trial that Ray starts again counts as
    running, so its end reaches the searcher through the limiter (which drops the ends of trials it does
    not count), and TPE learns what the resumed trial finished with."""
    generator._counter = trials_so_far
    limiter = generator.searcher
    limiter.live_trials = {trial.trial_id for trial in restored if trial.runs_again}
    limiter.num_unfinished_live_trials = len(limiter.live_trials)


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
    sampler = SpaceSampler(spaces, settings.overrides(), point_budgets=settings.point_budgets)
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
        TruthfulOptunaSearch(sampler, metric=settings.objective, seed=settings.seed,
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


def trial_name(trial) -> str:
    """"003_resnet_tpe": creation order, family, documented point or tpe (directory and display name)."""
    config = trial.config
    return f"{config['trial_number']:03d}_{config['family']}_{config['point']}"


class PointBudgetASHA(ASHAScheduler):
    """ASHA that lets a documented point with its own schedule (SpaceSampler.scheduled_points) run to its end.

    Its results still enter the rungs, as real observations the other trials are measured against,
    but neither a rung's cutoff nor max_t stops it: the trainer ends it, at its own epochs or by its
    own early stopping.
    """

    def __init__(self, budgeted_points: set[tuple[str, str]], **asha):
        super().__init__(**asha)
        self.budgeted_points = set(budgeted_points)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and (trial.config["family"], trial.config["point"]) in self.budgeted_points:
            self._num_stopped -= 1  # ASHA counted a stop that does not happen
            return self.CONTINUE
        return action


class SeriesWandbCallback(WandbLoggerCallback):
    """W&B as the documented series logged: tags model type (family and architecture), data-set version
    and experiment type ("search" or "reproduce") on every run; config = the trial's hyperparameters."""

    def __init__(self, *, data_version: str, experiment_type: str, **wandb):
        super().__init__(**wandb)
        self.run_tags = [data_version, experiment_type]

    def _start_logging_actor(self, trial, exclude_results, **init_kwargs):
        # Ray passes one set of wandb.init arguments to every trial; the model-type tags differ per trial.
        tags = list(dict.fromkeys([trial.config["family"], trial.config["arch"], *self.run_tags]))
        super()._start_logging_actor(trial, exclude_results, **{**init_kwargs, "tags": tags})


class TruthfulOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, with the documented points enqueued first, ASHA's stops told as PRUNED
    (reconcile.outcome_writes), every study write guarded (study_writes.py), and a study that goes with its
    experiment.

    Each trial it asks the study for is labelled with the experiment, which a continued study holds several of.
    Its saved state (Ray's searcher-state file, and tuner.pkl) never holds a connection to the study: Ray
    restores it on --resume in a folder that may have been moved or copied, so the study is opened where this
    session says it is (the experiment folder's own, or its record's URL), never where it was.
    """

    def __init__(self, sampler: SpaceSampler, *, metric: str, seed: int, location: study.StudyLocation,
                 experiment: str, optuna_sampler: str = "tpe", startup_trials: int = 10):
        self._experiment = experiment
        self._location = location
        self._numbers: dict[str, int] = {}  # Ray's trial id -> its study trial's number
        self._writes = study_writes.StudyWrites()
        # Constant liar: parallel trials that are still running count as bad, so TPE spreads out. Random
        # sampling is the baseline TPE is measured against (benchmarks/search_value.py).
        draws = (optuna.samplers.RandomSampler(seed=seed) if optuna_sampler == "random"
                 else optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials))
        # The study lives in its database (Ray creates it there, or loads it to continue it), not only in
        # Ray's pickle of this searcher.
        super().__init__(space=sampler, metric=metric, mode="max", sampler=draws,
                         storage=study.optuna_storage(location.storage), study_name=location.study_name)
        _session.searcher = self
        if not self._ot_study.trials:  # a continued study has run its documented points already
            study.label_new_study(self._ot_study, list(sampler.spaces), metric)
            for params, attributes in sampler.documented_points():
                self._ot_study.enqueue_trial(params, user_attrs=attributes)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_ot_study=None, _storage=None, _ot_trials={})  # opened again where the experiment is now
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_location" not in state:  # saved by an older fer_search, with its study's storage in it
            url = getattr(self._storage, "url", None)
            self._location = study.StudyLocation(url, self._study_name) if url else None
            self._numbers, self._writes = {}, study_writes.StudyWrites()
        self._ot_study = self._storage = None
        self._ot_trials = {}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self.__getstate__(), out)

    def restore(self, checkpoint_path: str) -> None:
        """--resume: Ray's saved state, then the study where this session finds it, settled with what Ray restores."""
        saved = _saved_searcher_state(checkpoint_path)
        if saved is not None:
            self.__setstate__(saved)
        self._open_study()

    def _study(self) -> optuna.Study:
        if self._ot_study is None:  # a copy of the searcher (tuner.pkl), which Ray runs afresh
            self._open_study()
        return self._ot_study

    def _open_study(self) -> None:
        self._location = (_session.resumed and _session.resumed.study) or self._location
        if self._location is None:
            raise UserError(f"experiment {self._experiment} was started by a version of fer_search that kept its study "
                            "in Ray's state only; it cannot be resumed: start a new --name")
        self._ot_study = study.open_for_search(self._location, self._sampler)
        _session.searcher = self
        if _session.resumed is not None:
            self._settle(_session.resumed.restored)
        self._writes.flush(self._ot_study, now=True)

    def _settle(self, restored: list[reconcile.RestoredTrial]) -> None:
        """--resume: the trials Ray restores are the ones this searcher hears of; what the study has beyond them
        is ended (reconcile.py)."""
        self._numbers = {trial.trial_id: trial.number for trial in restored}
        self._completed_trials = reconcile.ended_in_study(self._ot_study, restored)
        settlement = reconcile.settle_study(self._ot_study, self._experiment, restored, self.metric)
        self._writes.waiting.extend(settlement.writes)
        if settlement.lost:
            print(f"resume: {settlement}", flush=True)

    def flush_writes(self) -> int:
        """Writes what waits (the search's end); returns how many writes still wait."""
        if self._ot_study is not None:
            self._writes.flush(self._ot_study, now=True)
        return len(self._writes.waiting)

    def suggest(self, trial_id: str) -> dict | str | None:
        if budget_spent():
            return Searcher.FINISHED
        current = self._study()
        if not self._writes.flush(current):
            return None  # the database does not answer: no new trial now (Tune asks again)
        guard = _session.guard
        if guard is not None and not guard.claim(trial_id, _next_trial_kind(current), _session.deadline):
            return None if guard.may_make_room() else Searcher.FINISHED
        try:
            trial = study_writes.ask(current, self._experiment)
        except study.STORAGE_ERRORS as exc:
            self._writes.went_away(exc)
            # ask() may have taken a trial before the database failed: it is ended once the database answers.
            self._writes.waiting.append(study_writes.EndUntaken(self._experiment, frozenset(self._numbers.values())))
            return None
        self._writes.answered()
        try:
            # The sampler's configuration as it is: Ray's version would mix in Optuna's internal
            # parameter names ("resnet.lr") and labels.
            config = self._space(trial)
        except study.STORAGE_ERRORS as exc:  # asked, but no configuration: it ends here, as soon as it can
            self._writes.went_away(exc)
            self._writes.waiting.append(study_writes.Tell(trial.number, "FAIL"))
            return None
        self._numbers[trial_id] = trial.number
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._numbers or self.metric not in result:
            return
        self._writes.write(self._study(), study_writes.Report(self._numbers[trial_id], result["training_iteration"],
                                                              result[self.metric]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._numbers:
            return
        if trial_id in self._completed_trials:
            return self._tell_resumed_trial(trial_id, result, error)
        self._completed_trials.add(trial_id)
        # The result that made ASHA stop a trial goes to on_trial_complete only: it is recorded too.
        self._writes.write(self._study(), *reconcile.outcome_writes(self._numbers[trial_id], result, self.metric,
                                                                    error))

    def _tell_resumed_trial(self, trial_id: str, result: dict | None, error: bool) -> None:
        """A trial told FAIL when it errored, then resumed (--resume) and ended now: TPE learns its outcome from
        a copy (study_writes.ResumedCopy). A trial that ended before, and ran again from its checkpoint because
        Ray's snapshot predates its end, tells nothing new (the copy is made for a FAIL trial only)."""
        if error or not result or self.metric not in result or result.get(FINISHED_KEY) == DIVERGED_BY:
            return
        state = "COMPLETE" if FINISHED_KEY in result else "PRUNED"
        self._writes.write(self._study(), study_writes.ResumedCopy(
            self._numbers[trial_id], state, result[self.metric], int(result["training_iteration"])))


def _saved_searcher_state(path: str) -> dict | None:
    """The searcher's saved state, without any storage in it; None where it cannot be read (a copy cut short by
    the killed driver: the searcher then goes on from its first state, settled with what Ray restores)."""
    try:
        with open(path, "rb") as saved:
            state = pickle.load(saved)
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        logging.getLogger("ray.tune").warning(f"the searcher state {path} is unreadable ({exc!r}); going on without it")
        return None
    return state if isinstance(state, dict) else None


def _next_trial_kind(ot_study: optuna.Study) -> str:
    """The budget guard's name for the trial the study will hand out next: a queued documented point's
    "family/point", else "tpe"."""
    queued = ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if queued:
        attributes = min(queued, key=lambda t: t.number).user_attrs
        if "point" in attributes:
            return f"{attributes['family']}/{attributes['point']}"
    return TPE_POINT


class BudgetLedger(tune.Callback):
    """Tells a planned budget's start guard (guard.py) each epoch trained and each trial's end; the searcher
    asks it before creating a trial."""

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if _session.guard is not None:
            _session.guard.spend_epoch(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if _session.guard is not None:
            _session.guard.release(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.on_trial_complete(iteration, trials, trial)


class RungHistoryASHA(PointBudgetASHA):
    """ASHA whose rungs survive --resume. Tune does not save the scheduler, so a restored search starts
    with empty rungs, and trials would be compared only with those that reach a rung after the resume.
    Each trial Tune adds back replays its recorded results (result.json) into its bracket, as ASHA
    itself recorded them."""

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if not trial.relative_logdir:
            return  # a new trial: no directory, nothing recorded yet
        bracket = self._trial_info[trial.trial_id]
        # Read where Ray stores the trial: a local folder or a bucket (trial.path has no URI scheme).
        for result in recorded_results(StoragePath(trial.storage.storage_filesystem, trial.path)):
            if self._time_attr in result and self._metric in result:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


class BudgetASHA(RungHistoryASHA):
    """ASHA that starts nothing once the time budget is spent: trials waiting for resources (PENDING, never
    started) are ended without training an epoch, and told to Optuna as FAIL (never run: no observation for
    TPE). The console and the outcome count them as "not started".

    They are ended before a running trial's end frees its resources (Tune starts a waiting trial's worker as soon
    as they are free, without asking the scheduler), and whenever Tune asks the scheduler for a trial to run."""

    def choose_trial_to_run(self, tune_controller):
        if budget_spent():
            _end_waiting_trials(tune_controller)
            return None
        return super().choose_trial_to_run(tune_controller)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        if budget_spent():
            _end_waiting_trials(tune_controller)

    def on_trial_error(self, tune_controller, trial) -> None:
        super().on_trial_error(tune_controller, trial)
        if budget_spent():
            _end_waiting_trials(tune_controller)


def _end_waiting_trials(tune_controller) -> None:
    """End every trial that waits to start for the first time (a retried or resumed one ran before: it goes on)."""
    for trial in list(tune_controller.get_trials()):
        if trial.status == Trial.PENDING and trial.run_metadata.start_time is None:
            _session.not_started.append(trial_name(trial))
            tune_controller.search_alg.on_trial_complete(trial.trial_id, error=True)  # FAIL, before stop_trial's
            tune_controller.stop_trial(trial)


class HeaderKeepingCSVLogger(CSVLoggerCallback):
    """Ray's CSV logger, except that a trial that continues its progress.csv (restored by --resume, or retried
    after a failure) writes under the file's own header. Ray's takes its columns from the first new result and
    writes no header, so a result with other keys would put later values under the wrong column names."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        if trial not in self._trial_files:
            self._setup_trial(trial)
        if self._trial_csv[trial] is None and self._trial_continue[trial]:
            header = _csv_header(Path(trial.local_path, EXPR_PROGRESS_FILE))
            if header:
                self._trial_csv[trial] = csv.DictWriter(self._trial_files[trial], header)
        super().log_trial_result(iteration, trial, result)


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        return next(csv.reader(handle), [])


class ConsoleReporter(tune.Callback):
    """One line per event (trial started, new best, trial ended or failed) instead of Ray's tables."""

    def __init__(self, objective: str, num_samples: int):
        self.objective = objective
        self.num_samples = num_samples
        self.best: float | None = None
        self.started = time.monotonic()
        self.running: set[str] = set()
        self.ended: set[str] = set()  # Ray flips a trial's status only after these callbacks

    def setup(self, **info) -> None:
        self.started = time.monotonic()  # again on --resume: the clock shows this session's time
        self.num_samples = _session.num_samples or self.num_samples

    def _say(self, trials, text: str) -> None:
        ended = self.ended | {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        elapsed = int(time.monotonic() - self.started)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text:<72} | {len(self.running)} running, "
              f"{len(ended)}/{self.num_samples} ended", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self._say(trials, f"start  {trial}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        value = result.get(self.objective)
        if self.best is None:  # after --resume: the restored trials' best counts too
            found = (t.last_result.get(self.objective, math.nan) for t in trials if t is not trial)
            self.best = max((v for v in found if math.isfinite(v)), default=None)
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best):
            self.best = value
            self._say(trials, f"best   {trial}: {self.objective} {value:.4f} at epoch {result['training_iteration']}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        result = trial.last_result
        if result.get(FINISHED_KEY) == DIVERGED_BY:
            self._say(trials, f"FAILED {trial}: {diverged_line(result)}")
            return
        if trial_name(trial) in _session.not_started:
            self._say(trials, f"end    {trial}: not started (the time budget ran out)")
            return
        stopped_by = "the time budget" if budget_spent() else "ASHA"
        how = (f"done ({result[FINISHED_KEY]})" if FINISHED_KEY in result
               else f"stopped by {stopped_by} at epoch {result.get('training_iteration', 0)}")
        value = result.get(self.objective)
        self._say(trials, f"end    {trial}: {how}" + (f", {self.objective} {value:.4f}" if value is not None else ""))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        error = error_line(Path(trial.local_path, ERROR_FILE))
        self._say(trials, f"retry  {trial} from its last checkpoint: {error}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        self._say(trials, f"ERROR  {trial}: {error_line(Path(trial.local_path, ERROR_FILE))}")
        print(f"       full log: {trial.path}/{ERROR_FILE}", flush=True)


RAY_LOG_FILE = "ray.log"
# What the console still shows of Ray's warnings and errors: the ones a user must act on.
ACTIONABLE = re.compile(r"insufficient|infeasible|cannot be scheduled|pending|restor|sync|upload|storage|"
                        r"checkpoint", re.IGNORECASE)
# The reporter speaks for failed trials. (Ray's warnings that experiment snapshots come too often or take too
# long do reach the console: checkpoints that throttle a search are the user's to space out, --checkpoint-every.)
NOT_ACTIONABLE = re.compile(r"Trial task failed|Received additional", re.IGNORECASE)


def _route_logs(experiment: Path | None) -> logging.FileHandler | None:
    """Ray's warnings and errors go to EXPERIMENT/ray.log (a local experiment; None: one in a bucket), and to the
    console only those a user must act on (no resources for a trial, a failed restore or storage sync, experiment
    snapshots that slow the search down); our reporter speaks for the rest (a failed trial: its real error and log
    path)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray_logger = logging.getLogger("ray")
    for name in ("ray", "ray.train", "ray.air", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in ray_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_actionable)
    log_file = None
    if experiment is not None:
        Path(experiment).mkdir(parents=True, exist_ok=True)
        log_file = logging.FileHandler(Path(experiment, RAY_LOG_FILE))
        log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        ray_logger.addHandler(log_file)
    warnings.filterwarnings("ignore", module="ray")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's cut-off over diverged trials
    # A retried trial reports again the epochs after its last checkpoint; Optuna keeps the first value of each.
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step=")
    return log_file


def _route_study_writes(log_file: logging.FileHandler | None) -> list[logging.Handler]:
    """The study's writes speak (once per outage of its database) on this search's console, on the stdout of now,
    and in ray.log beside Ray's; the handlers are this search's own (the logger passes nothing on, so nothing
    else prints them twice)."""
    study_log = logging.getLogger(study_writes.__name__)
    study_log.setLevel(logging.INFO)
    study_log.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("study: %(message)s"))
    handlers = [console] + ([log_file] if log_file is not None else [])
    for handler in handlers:
        study_log.addHandler(handler)
    return handlers


def _actionable(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return bool(ACTIONABLE.search(message)) and not NOT_ACTIONABLE.search(message)
