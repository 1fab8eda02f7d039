"""Every Ray call of fer_search: the trainable, the Optuna searcher, the scheduler, the console reporter,
the W&B logger, the Tuner, the checks on a cluster's nodes.

A search is a Ray Tune Tuner with OptunaSearch (TPE, seeded; the documented points enqueued first; the
study in its database) and ASHA over epochs (`training_iteration`), which lets a documented point with
its own budget run to its end. The driver decodes the data set once and puts it in Ray's object store;
every trial, on any node, maps the same arrays read-only.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import re
import socket
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
from ray.air.integrations.wandb import WandbLoggerCallback  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from fer_search.data.types import FERData  # noqa: E402
from fer_search.errors import UserError  # noqa: E402
from fer_search.search import cluster_checks, code_probe, study  # noqa: E402
from fer_search.search.layout import (DIVERGED_BY, ERROR_FILE, FINISHED_KEY, NODE_KEY, diverged_line,  # noqa: E402
                                      error_line, recorded_results)
from fer_search.search.sampler import SpaceSampler  # noqa: E402
from fer_search.search.settings import (Resources, SearchSettings, local_cpu_count,  # noqa: E402
                                        local_gpu_count, plan_resources)
from search_spaces import SearchSpace  # noqa: E402


# To answer the code check a node starts a Python worker (with --ship-code, after unpacking the code).
CODE_PROBE_TIMEOUT_S = 180


def run_search(spaces: list[SearchSpace], data: FERData, settings: SearchSettings, *, resume: bool = False,
               num_samples: int | None = None) -> str:
    """Run (or with resume=True, continue) experiment settings.name under settings.storage; returns its path.
    On resume, `num_samples` (if given) is the number of trials the experiment now has in all."""
    path = f"{settings.storage.rstrip('/')}/{settings.name}"
    if resume and not tune.Tuner.can_restore(path):
        raise UserError(f"nothing to resume at {path}: no search was started there (check --storage and --name)")
    if not resume and tune.Tuner.can_restore(path):
        raise UserError(f"experiment {path} exists already; add --resume to continue it, or pick another --name")
    if settings.address is None:
        # Before starting Ray: a GPU trial on a machine without one would wait forever.
        resources = plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())
    _session.start(settings.time_budget_s, num_samples if resume else None)
    log_file = _route_logs(path)
    if settings.address is None:
        _start_local_ray(resources.cpus, resources.gpus)
    else:
        ray.init(address=settings.address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 runtime_env=cluster_checks.shipped_code() if settings.ship_code else None)
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
            tuner = _new_tuner(trainable, spaces, settings, resources.concurrency, data.fingerprint())
        tuner.fit()
    finally:
        _session.end()
        ray.shutdown()
        if log_file is not None:
            logging.getLogger("ray").removeHandler(log_file)
            log_file.close()
    return path


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


class _Session:
    """What this driver session was asked for. Ray pickles the stopper and the search generator with
    the experiment and restores them on --resume; they read these values, not pickled copies, so a
    resumed search runs under the time budget given now."""

    deadline: float | None = None  # time.time() after which running trials stop at their next result
    num_samples: int | None = None  # on resume: the trials the experiment now has in all (it may grow)
    ran_out = False  # whether the last search ended with its time budget spent

    def start(self, budget_s: float | None, num_samples: int | None) -> None:
        self.deadline = time.time() + budget_s if budget_s else None
        self.num_samples = num_samples
        self.ran_out = False

    def end(self) -> None:
        """Nothing of a finished search applies to the next one in this process (tests run several)."""
        self.ran_out = budget_spent()
        self.deadline = self.num_samples = None


_session = _Session()


def budget_spent() -> bool:
    """Whether the running search's --time-budget has run out."""
    return _session.deadline is not None and time.time() >= _session.deadline


def budget_ran_out() -> bool:
    """Whether the last search in this process ended because its --time-budget ran out."""
    return _session.ran_out


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
    searcher = SessionSearchGenerator(ConcurrencyLimiter(
        TruthfulOptunaSearch(sampler, metric=settings.objective, seed=settings.seed,
                             location=settings.study_location(), experiment=settings.name,
                             startup_trials=settings.tpe_startup_trials),
        max_concurrent=concurrency))
    scheduler = RungHistoryASHA(sampler.scheduled_points, time_attr="training_iteration", metric=settings.objective,
                                mode="max", max_t=settings.max_epochs,
                                grace_period=min(settings.grace_period, settings.max_epochs),
                                reduction_factor=settings.reduction_factor)
    callbacks = [ConsoleReporter(settings.objective, settings.num_samples), CSVLoggerCallback(), JsonLoggerCallback()]
    if settings.wandb_project:
        callbacks.append(SeriesWandbCallback(data_version=data_version, experiment_type=settings.experiment_type,
                                             project=settings.wandb_project, group=settings.name, log_config=True))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples,
            reuse_actors=True,  # a new trial skips the worker's start-up (importing torch) where it can
            trial_name_creator=trial_name, trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=settings.name, storage_path=settings.storage, verbose=0, callbacks=callbacks, stop=SearchStopper(),
            # The newest checkpoint holds the best epoch's files (best/). The one before stays too: Tune
            # deletes an old checkpoint as soon as a new one is registered, before it saves the experiment
            # state, so a driver killed in between would resume from a checkpoint that is gone.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # Trials write TensorBoard files into their working directory; this copies them to storage.
            sync_config=tune.SyncConfig(sync_artifacts=True),
            # A failed trial is restarted from its last checkpoint: a CUDA out-of-memory error or a lost
            # node is often gone by then (an error in the configuration just fails again, at once).
            failure_config=tune.FailureConfig(max_failures=settings.trial_retries),
        ),
    )


def _trainable(config: dict, data_refs: list) -> None:
    from fer_search.search.trial import load_checkpoint, run_trial

    device = _trial_device(tune.get_context().get_trial_resources().required_resources.get("GPU", 0.0))
    data = ray.get(data_refs[0])
    # Recorded with every result: the node the trial ran on (the leaderboard shows it), and the stored data
    # set it read (one object for every trial of the search).
    placement = {NODE_KEY: ray.get_runtime_context().get_node_id(), "data_object_id": data_refs[0].hex()}

    def report(metrics: dict, directory: str | None) -> None:
        # Ray copies the directory to storage before report() returns, so the caller may delete it.
        tune.report({**metrics, **placement},
                    checkpoint=tune.Checkpoint.from_directory(directory) if directory else None)

    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            resume = load_checkpoint(directory)
    run_trial(config, data, report=report, log_dir=os.getcwd(), resume=resume, device=device)  # cwd: trial's own


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
    """Ray's OptunaSearch, with the documented points enqueued first and ASHA's stops told as PRUNED.

    Ray tells Optuna a trial that ASHA stopped early as COMPLETE with its low-budget value, so TPE
    would treat an epoch-2 score as a final one. A trial the trainer ended itself reports
    `finished_by`; any other end without an error is a stop (ASHA, or the time budget), and is
    told as PRUNED. Optuna then keeps its intermediate values (reported every epoch by Ray) and its
    last one as the value, which TPE ranks below every completed trial. A trial that diverged is
    told as FAIL.

    Each trial it asks the study for is labelled with the experiment, which a continued study holds several of.
    """

    def __init__(self, sampler: SpaceSampler, *, metric: str, seed: int, location: study.StudyLocation,
                 experiment: str, startup_trials: int = 10):
        self._experiment = experiment
        # Constant liar: parallel trials that are still running count as bad, so TPE spreads out.
        tpe = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials)
        # The study lives in its database (Ray creates it there, or loads it to continue it), not only in
        # Ray's pickle of this searcher.
        super().__init__(space=sampler, metric=metric, mode="max", sampler=tpe,
                         storage=optuna.storages.RDBStorage(location.storage), study_name=location.study_name)
        if not self._ot_study.trials:  # a continued study has run its documented points already
            study.label_new_study(self._ot_study, list(sampler.spaces), metric)
            for params, attributes in sampler.documented_points():
                self._ot_study.enqueue_trial(params, user_attrs=attributes)

    def suggest(self, trial_id: str) -> dict | str:
        if budget_spent():
            return Searcher.FINISHED
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
        if trial_id in self._completed_trials:
            return self._tell_resumed_trial(trial_id, result, error)
        if result and result.get(FINISHED_KEY) == DIVERGED_BY:
            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return None
        if error or not result or FINISHED_KEY in result:
            return super().on_trial_complete(trial_id, result, error)
        # The result that made ASHA stop the trial goes to on_trial_complete only: record it too.
        self._ot_trials[trial_id].report(result[self.metric], result["training_iteration"])
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def _tell_resumed_trial(self, trial_id: str, result: dict | None, error: bool) -> None:
        """A trial told FAIL when it errored, then resumed (--resume) and ended now. Optuna cannot change
        a finished trial, so TPE learns the outcome from a copy with the same parameters."""
        told = self._ot_study.trials[self._ot_trials[trial_id].number]
        if error or not result or told.state != optuna.trial.TrialState.FAIL or self.metric not in result:
            return
        if result.get(FINISHED_KEY) == DIVERGED_BY:
            return
        value = result[self.metric]
        self._ot_study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if FINISHED_KEY in result else optuna.trial.TrialState.PRUNED,
            value=value, params=told.params, distributions=told.distributions,
            user_attrs={**told.user_attrs, "resumed_trial_number": told.number},
            intermediate_values={int(result["training_iteration"]): value}))


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
        for result in recorded_results(Path(trial.path)):
            if self._time_attr in result and self._metric in result:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


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
# The reporter speaks for failed trials; Ray's advice on its own snapshot frequency is no user's to act on.
NOT_ACTIONABLE = re.compile(r"Trial task failed|Received additional|snapshotting has been triggered", re.IGNORECASE)


def _route_logs(experiment: str) -> logging.FileHandler | None:
    """Ray's warnings and errors go to EXPERIMENT/ray.log (a local experiment), and to the console only
    those a user must act on (no resources for a trial, a failed restore or storage sync); our reporter
    speaks for the rest (a failed trial: its real error and log path)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray_logger = logging.getLogger("ray")
    for name in ("ray", "ray.train", "ray.air", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in ray_logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.addFilter(_actionable)
    log_file = None
    if "://" not in experiment:
        Path(experiment).mkdir(parents=True, exist_ok=True)
        log_file = logging.FileHandler(Path(experiment, RAY_LOG_FILE))
        log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        ray_logger.addHandler(log_file)
    warnings.filterwarnings("ignore", module="ray")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="All-NaN slice encountered")  # ASHA's cut-off over diverged trials
    return log_file


def _actionable(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return bool(ACTIONABLE.search(message)) and not NOT_ACTIONABLE.search(message)
