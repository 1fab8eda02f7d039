"""Every Ray call of fer_search: the trainable, the Optuna searcher, the console reporter, the Tuner.

A search is a Ray Tune Tuner with OptunaSearch (TPE, seeded; the documented points enqueued first)
and ASHA over epochs (`training_iteration`). The driver decodes the data set once and puts it in
Ray's object store; every trial maps the same arrays read-only (`tune.with_parameters`).
"""
from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from pathlib import Path

# Ray's own progress tables and TensorBoard logger are replaced by ours: set before Tune runs.
# The auto loggers also include the CSV and JSON ones that write progress.csv / result.json;
# those are passed back explicitly below.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"

import optuna  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from fer_search.data.types import FERData  # noqa: E402
from fer_search.errors import UserError  # noqa: E402
from fer_search.search import cluster_checks, code_probe, study  # noqa: E402
from fer_search.search.layout import FINISHED_KEY, NODE_KEY  # noqa: E402
from fer_search.search.sampler import SpaceSampler  # noqa: E402
from fer_search.search.settings import (Resources, SearchSettings, local_cpu_count,  # noqa: E402
                                        local_gpu_count, plan_resources)
from search_spaces import SearchSpace  # noqa: E402


# To answer the code check a node starts a Python worker (with --ship-code, after unpacking the code).
CODE_PROBE_TIMEOUT_S = 180


def run_search(spaces: list[SearchSpace], data: FERData, settings: SearchSettings, *, resume: bool = False) -> str:
    """Run (or with resume=True, continue) experiment settings.name under settings.storage; returns its path."""
    path = f"{settings.storage.rstrip('/')}/{settings.name}"
    if resume and not tune.Tuner.can_restore(path):
        raise UserError(f"nothing to resume at {path}: no search was started there (check --storage and --name)")
    if not resume and tune.Tuner.can_restore(path):
        raise UserError(f"experiment {path} exists already; add --resume to continue it, or pick another --name")
    if not resume:
        study.record(path, settings.study_location())
    if settings.address is None:
        # Before starting Ray: a GPU trial on a machine without one would wait forever.
        resources = plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())
    _quiet()
    ray.init(address=settings.address, num_cpus=None if settings.address else resources.cpus,
             num_gpus=None if settings.address else resources.gpus, include_dashboard=False,
             runtime_env=cluster_checks.shipped_code() if settings.ship_code else None,
             log_to_driver=False, logging_level=logging.ERROR)
    try:
        if settings.address is not None:
            resources = _check_cluster(settings, spaces)
        # The driver puts the data set into the object store once; each node fetches that one object for all of
        # its trials. (In a list: with_parameters puts its arguments, and Ray refuses to put a bare ObjectRef.)
        data_ref = ray.put(data)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, data_refs=[data_ref]),
            functools.partial(_trial_resources, resources.cpus_per_trial, resources.gpus_per_trial),
        )
        if resume:
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = _new_tuner(trainable, spaces, settings, resources.concurrency)
        tuner.fit()
    finally:
        ray.shutdown()
    return path


def _check_cluster(settings: SearchSettings, spaces: list[SearchSpace]) -> Resources:
    """The checks of cluster_checks.py on the cluster's live nodes, before any trial starts."""
    nodes = [cluster_checks.Node(n["NodeID"], n["NodeManagerAddress"], n["Resources"].get("CPU", 0),
                                 n["Resources"].get("GPU", 0)) for n in ray.nodes() if n["Alive"]]
    cluster_checks.check_storage(settings.storage, len(nodes), settings.storage_shared)
    total = ray.cluster_resources()
    resources = plan_resources(settings, spaces, cpus_found=int(total.get("CPU", 0)),
                               gpus_found=int(total.get("GPU", 0)))
    cluster_checks.check_trial_fits(resources.cpus_per_trial, resources.gpus_per_trial, nodes)
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


def _new_tuner(trainable, spaces: list[SearchSpace], settings: SearchSettings, concurrency: int) -> tune.Tuner:
    sampler = SpaceSampler(spaces, settings.overrides())
    searcher = TruthfulOptunaSearch(sampler, metric=settings.objective, seed=settings.seed,
                                    location=settings.study_location(), experiment=settings.name)
    scheduler = ASHAScheduler(time_attr="training_iteration", metric=settings.objective, mode="max",
                              max_t=settings.max_epochs, grace_period=min(settings.grace_period, settings.max_epochs),
                              reduction_factor=settings.reduction_factor)
    callbacks = [ConsoleReporter(settings.objective, settings.num_samples), CSVLoggerCallback(), JsonLoggerCallback()]
    if settings.wandb_project:
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=settings.wandb_project, group=settings.name,
                                             tags=sorted({s.family for s in spaces}), log_config=True))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples,
            max_concurrent_trials=concurrency, time_budget_s=settings.time_budget_s,
            reuse_actors=True,  # a new trial skips the worker's start-up (importing torch) where it can
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=settings.name, storage_path=settings.storage, verbose=0, callbacks=callbacks,
            # The newest checkpoint holds the best epoch's files (best/), so one is all a trial keeps.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            # A failed trial (e.g. its node was lost) starts again from its last checkpoint, on any node.
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            # Trials write TensorBoard files into their working directory; this copies them to storage.
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )


def _trainable(config: dict, data_refs: list) -> None:
    from fer_search.search.trial import load_checkpoint, run_trial

    data = ray.get(data_refs[0])
    # Recorded with every result: the node the trial ran on (the leaderboard shows it), and the stored data
    # set it read (one object for every trial of the search).
    placement = {NODE_KEY: ray.get_runtime_context().get_node_id(), "data_object_id": data_refs[0].hex()}

    def report(metrics: dict, directory: str) -> None:
        # Ray copies the directory to storage before report() returns, so the caller may delete it.
        tune.report({**metrics, **placement}, checkpoint=tune.Checkpoint.from_directory(directory))

    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            resume = load_checkpoint(directory)
    run_trial(config, data, report=report, log_dir=os.getcwd(), resume=resume)  # cwd: the trial's working directory


def _trial_resources(cpus: int, gpus_by_family: dict[str, float], config: dict) -> tune.PlacementGroupFactory:
    return tune.PlacementGroupFactory([{"CPU": cpus, "GPU": gpus_by_family[config["family"]]}])


def trial_name(trial) -> str:
    """"003_resnet_tpe": creation order, family, documented point or tpe (directory and display name)."""
    config = trial.config
    return f"{config['trial_number']:03d}_{config['family']}_{config['point']}"


class TruthfulOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, with the documented points enqueued first and ASHA's stops told as PRUNED.

    Ray tells Optuna a trial that ASHA stopped early as COMPLETE with its low-budget value, so TPE
    would treat an epoch-2 score as a final one. A trial the trainer ended itself reports
    `finished_by`; any other end without an error is a stop (ASHA, or the time budget), and is
    told as PRUNED. Optuna then keeps its intermediate values (reported every epoch by Ray) and its
    last one as the value, which TPE ranks below every completed trial.

    Each trial it asks the study for is labelled with the experiment, which a continued study holds several of.
    """

    def __init__(self, sampler: SpaceSampler, *, metric: str, seed: int, location: study.StudyLocation,
                 experiment: str):
        self._experiment = experiment
        # Constant liar: parallel trials that are still running count as bad, so TPE spreads out.
        tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        # The study lives in its database (Ray creates it there, or loads it to continue it), not only in
        # Ray's pickle of this searcher.
        super().__init__(space=sampler, metric=metric, mode="max", sampler=tpe,
                         storage=optuna.storages.RDBStorage(location.storage), study_name=location.study_name)
        if not self._ot_study.trials:  # a continued study has run its documented points already
            study.label_new_study(self._ot_study, list(sampler.spaces), metric)
            for params, attributes in sampler.documented_points():
                self._ot_study.enqueue_trial(params, user_attrs=attributes)

    def suggest(self, trial_id: str) -> dict:
        # The sampler's configuration as it is: Ray's version would mix in Optuna's internal
        # parameter names ("resnet.lr") and labels.
        if trial_id not in self._ot_trials:
            self._ot_trials[trial_id] = self._ot_study.ask()
            self._ot_trials[trial_id].set_user_attr(study.EXPERIMENT_ATTR, self._experiment)
        return self._space(self._ot_trials[trial_id])

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        # On --resume: trials this experiment asked for after Ray last saved its state died with the driver, and
        # Ray will not run them. They are FAIL in the study, not RUNNING for ever (TPE's constant liar counts
        # running trials as bad ones).
        held = {trial.number for trial in self._ot_trials.values()}
        for trial in self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.user_attrs.get(study.EXPERIMENT_ATTR) == self._experiment and trial.number not in held:
                self._ot_study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or not result or FINISHED_KEY in result or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        # The result that made ASHA stop the trial goes to on_trial_complete only: record it too.
        self._ot_trials[trial_id].report(result[self.metric], result["training_iteration"])
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


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
            self.best = max((t.last_result.get(self.objective, 0.0) for t in trials if t is not trial), default=None)
        if value is not None and (self.best is None or value > self.best):
            self.best = value
            self._say(trials, f"best   {trial}: {self.objective} {value:.4f} at epoch {result['training_iteration']}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        result = trial.last_result
        how = (f"done ({result[FINISHED_KEY]})" if FINISHED_KEY in result
               else f"stopped early at epoch {result.get('training_iteration', 0)}")
        value = result.get(self.objective)
        self._say(trials, f"end    {trial}: {how}" + (f", {self.objective} {value:.4f}" if value is not None else ""))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._say(trials, f"retry  {trial}: failed (a lost node?); starts again from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.ended.add(trial.trial_id)
        error = Path(trial.local_path, "error.txt")  # Ray's traceback; the last line names the error
        lines = error.read_text().strip().splitlines() if error.is_file() else []
        self._say(trials, f"ERROR  {trial}: {lines[-1] if lines else 'failed'}")
        print(f"       traceback: {trial.path}/error.txt", flush=True)


def _quiet() -> None:
    """Ray's and Optuna's harmless chatter off; our reporter speaks instead."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Tune logs a failed trial's whole traceback; the reporter prints its last line and where the rest is.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="ray")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
