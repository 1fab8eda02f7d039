"""`run`, `reproduce` and `spaces`: the search's command line. Ray is imported only once a search starts."""
from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time

from fer_search.cli_options import add_data_option, add_keep_test_copies, add_metric_option, add_storage_option
from fer_search.errors import UserError
from fer_search.search.settings import SearchSettings

# --smoke: the Quickstart's end-to-end budget on --data synthetic (3,600 training images). Documented points run
# all their (cut) epochs, as in any search; ASHA judges the TPE trials at a third of the epochs, as by default.
# Ten epochs let the documented v1 and v2 (3x3 CNNs as the notebooks ran them) both learn the synthetic faces
# (at six, v2 lagged v1 by 18 points and the ensemble kept v1 alone); a fourth trial is TPE's, judged at epoch 3.
# So the ensemble has several trials of different configurations to choose from, in a few minutes on 2 CPU cores.
SMOKE = {"num_samples": 4, "max_epochs": 10, "grace_period": 3, "max_train_images": 4096}
BUDGET_OPTIONS = tuple(SMOKE)  # the rest of the defaults: SearchSettings'
# Optuna samples 10 trials at random before TPE models them, more than a smoke search has.
SMOKE_TPE_STARTUP = 2
WANDB_PROJECT = "facial-expression-recognition"  # the documented series' project


def add_run_parser(subparsers) -> None:
    from search_spaces import FAMILIES

    p = subparsers.add_parser(
        "run", help="search a model family (Ray Tune + Optuna TPE + ASHA)",
        description="Search one or more model families: the documented configurations run first, each with its "
                    "own documented budget (its epochs, early stopping and schedule; --max-epochs does not shorten "
                    "it and ASHA does not stop it), then TPE searches around them while ASHA stops weak trials early.")
    p.add_argument("families", nargs="?", metavar="FAMILY[,FAMILY...]|all",
                   help=f"{', '.join(FAMILIES)}, or all")
    p.add_argument("--space", action="append", default=[], metavar="FILE",
                   help="your own search space file (.py/.yaml/.json; see `spaces`), instead of or besides FAMILY")
    _add_shared_options(p, storage_help="results folder, or a URI Ray supports (s3://...)",
                        name_help="experiment name [FAMILIES-DATE-TIME; with --resume: the newest under storage]")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search (finished trials are kept, unfinished ones continue)")
    p.add_argument("--num-samples", metavar="N", type=int,
                   help=f"trials of the whole search, documented points included: one number for all the families "
                        f"together, not per family [{SearchSettings.num_samples}; with a budget: planned]")
    p.add_argument("--max-epochs", metavar="N", type=int,
                   help=f"epochs of a TPE trial, which ASHA may stop earlier; a documented point runs its own "
                        f"epochs instead (except with --smoke); one number for every family "
                        f"[{SearchSettings.max_epochs}; with a budget: planned]")
    p.add_argument("--grace-period", metavar="N", type=int,
                   help="epochs before ASHA may stop a trial [a third of --max-epochs]")
    p.add_argument("--reduction-factor", metavar="N", type=int, default=3,
                   help="ASHA keeps 1/N of the trials per rung [%(default)s]")
    add_metric_option(p, searched=True)
    _add_study_and_cluster_options(p)
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="a planned budget, from the command's start: measure this machine's speed, then size the trials "
                        "at once, their threads, the TPE trials' epochs and ASHA's rungs so that every trial finishes "
                        "its schedule in time (the plan is printed first); a trial runs past it only if the plan was "
                        "wrong, and is then stopped at the end of its epoch")
    p.add_argument("--epochs-budget", type=float, metavar="EPOCHS",
                   help="a planned budget in epochs of the full training set, all trials together (as --time-budget, "
                        "but the same on every machine)")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                   help="how new configurations are drawn: Optuna's TPE, or at random (a baseline) [%(default)s]")
    p.add_argument("--skip-points", action="store_true",
                   help="run no documented point: the search starts from its ranges alone (a baseline)")
    p.add_argument("--checkpoint-every", metavar="N", type=int,
                   help="a trial checkpoints every N epochs, besides on each new best and its last epoch (a resume "
                        "retrains at most N epochs) [every epoch that ends a minute or more after its last checkpoint]")
    p.add_argument("--retries", metavar="N", type=int, default=2,
                   help="restarts of a failed trial from its last checkpoint (CUDA out of memory, a lost node) "
                        "[%(default)s]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a trainer or model option every trial gets, over what its space says (e.g. --set "
                        "precision=fp32)")
    p.add_argument("--smoke", action="store_true",
                   help="a small end-to-end budget (the Quickstart's): "
                        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in SMOKE.items())
                        + f"; documented points are cut to it too (ASHA lets them finish), and TPE models the "
                          f"trials once {SMOKE_TPE_STARTUP} have results (not after 10 random ones)")
    p.set_defaults(handler=_cmd_run, run_parser=p)  # the parser: --resume tells given options from defaults


def _add_study_and_cluster_options(p) -> None:
    """Where the Optuna study is, and the Ray cluster that runs the search."""
    p.add_argument("--study-storage", metavar="URL",
                   help="database of the Optuna study (any Optuna supports: sqlite:////abs/studies.db, "
                        "postgresql://..., mysql://..., or a journal file journal:////abs/studies.journal); a study "
                        "named like the experiment there is continued [study.db in the experiment folder; "
                        "study.journal with --storage-shared]")
    p.add_argument("--continue-study", metavar="EXPERIMENT",
                   help="a new experiment whose trials join EXPERIMENT's study: TPE goes on from its history and the "
                        "documented points are not run again (with --study-storage: the study EXPERIMENT there)")
    p.add_argument("--address", help="connect to a running Ray cluster: auto or HOST:PORT (see docs/cluster.md)")
    p.add_argument("--storage-shared", action="store_true",
                   help="--storage is a folder on a shared file system that every node sees at the same path (e.g. "
                        "an NFS mount): the study becomes a journal file there (SQLite's locks are not safe on one); "
                        "with --address, a local folder is refused on a cluster of more than one node without it")
    p.add_argument("--ship-code", action="store_true",
                   help="with --address: send this checkout's fer_search and search_spaces to every node (Ray "
                        "runtime_env), so nodes without the install, or with another version, run it")


def _add_shared_options(p, *, storage_help: str, name_help: str) -> None:
    add_data_option(p)
    add_storage_option(p, storage_help)
    p.add_argument("--name", help=name_help)
    p.add_argument("--cpus", metavar="N", type=int, help="CPUs the search may use [all]")
    p.add_argument("--gpus", metavar="N", type=int, help="GPUs the search may use [every visible one]")
    p.add_argument("--gpus-per-trial", type=float, metavar="F",
                   help="GPU share of one trial, e.g. 0.25 runs 4 on a GPU "
                        "[per family: 0.25 CNNs, 0.5 resnet/mobilevit, 1 vit]")
    p.add_argument("--cpus-per-trial", metavar="N", type=float,
                   help="CPUs of one trial; below 1 shares a core, e.g. 0.5 runs 2 one-thread trials on it [1; with a "
                        "budget: the measured best]")
    p.add_argument("--seed", metavar="N", type=int, default=0,
                   help="seed of the validation split, TPE and training [%(default)s]")
    p.add_argument("--max-train-images", metavar="N", type=int,
                   help="cap on training images per epoch, for quick checks, 0 = all [0]")
    add_keep_test_copies(p)
    p.add_argument("--wandb", action="store_true",
                   help="also log every trial to Weights & Biases (tags: model type, data-set version, experiment type)")
    p.add_argument("--wandb-project", default=WANDB_PROJECT, help="W&B project [%(default)s]")


def add_spaces_parser(subparsers) -> None:
    p = subparsers.add_parser("spaces", help="show a family's documented points and search ranges")
    p.add_argument("family", nargs="?", metavar="FAMILY|FILE", help="a family, or a space file to check")
    p.set_defaults(handler=_cmd_spaces)


def _cmd_spaces(args) -> int:
    from search_spaces import FAMILIES, describe, load_space

    if args.family:
        print(describe(load_space(args.family)))
        return 0
    for family in FAMILIES:
        space = load_space(family)
        print(f"{family:<14} {len(space.points)} documented point(s): {', '.join(space.points)}; "
              f"{len(space.params)} TPE ranges")
    print("\n`python -m fer_search spaces FAMILY` shows one; search_spaces/<family>.py is the template "
          "for a space file of your own (`run --space FILE`).")
    return 0


def _cmd_run(args) -> int:
    started = time.time()  # a budget counts from here: loading the data and measuring are part of it
    from fer_search.search import experiment
    from fer_search.search.settings import local_cpu_count, local_gpu_count, plan_resources

    chosen = experiment.choose(args)
    spaces = _spaces(args)
    settings = _settings(args, chosen.storage, chosen.name, spaces)
    settings.study = experiment.study_location(args, chosen.storage, settings.name, [s.family for s in spaces],
                                               settings.objective)
    _check_fixed_options(spaces, settings.fixed)
    if args.wandb:
        _check_wandb()
    if args.address is None:
        # Fail before decoding the data: a GPU trial on a machine without one would wait forever.
        plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())

    from fer_search.data import describe_load, load_data
    from fer_search.data.types import VAL_FRACTION

    data = load_data(args.data, seed=args.seed, val_fraction=VAL_FRACTION, drop_test_copies=not args.keep_test_copies)
    print(describe_load(data))
    from fer_search.search.budget import plan_from_options

    plan = plan_from_options(args, spaces, data, settings, started) if chosen.record is None and not args.resume else None
    if plan is not None:
        spaces = plan[1]
    if args.skip_points:  # a baseline: the search starts from the ranges alone
        spaces = [dataclasses.replace(space, points={}) for space in spaces]
    record = experiment.write_record(args, chosen.record, spaces, data, settings, plan[0] if plan is not None else None)
    _say_what_runs(args, settings, spaces, record)

    from fer_search.search.ray_tune import run_search
    from fer_search.search.session import budget_ran_out, trials_not_started

    if not args.resume:
        say_random_init(spaces)
    if args.time_budget:
        settings.time_budget_s = max(1.0, args.time_budget * 60 - (time.time() - started))
    run_search(spaces, data, settings, resume=args.resume,
               num_samples=record.num_samples if record and args.resume else None)
    if budget_ran_out() and args.time_budget:
        print(f"\nthe time budget ({args.time_budget:g} min) ran out: running trials were stopped at the end of "
              "their epoch (their best epochs are kept), and no new trial was started")
    return _print_outcome(settings.storage, settings.name, settings.metric, args, budget_ran_out(),
                          trials_not_started())


def _settings(args, storage: str, name: str | None, spaces):
    """The search's settings from the options (--smoke's budget, or the defaults, where they are left out)."""
    from fer_search.training.config import parse_set_options

    given = {key: getattr(args, key) for key in BUDGET_OPTIONS if getattr(args, key) is not None}
    budget = {**(SMOKE if args.smoke else {}), **given}  # what is left out: SearchSettings' defaults
    _check_run_options(args, budget)
    if args.ship_code and args.address is None:
        raise UserError("--ship-code sends this checkout to a cluster's nodes: add --address (a search on this machine "
                        "runs this checkout already)")
    return SearchSettings(
        storage=storage, name=name or "-".join(s.family for s in spaces) + time.strftime("-%Y%m%d-%H%M%S"),
        metric=args.metric, seed=args.seed, cpus=args.cpus, gpus=args.gpus,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial or 1, address=args.address,
        storage_shared=args.storage_shared, ship_code=args.ship_code,
        reduction_factor=args.reduction_factor, trial_retries=args.retries,
        wandb_project=args.wandb_project if args.wandb else None, point_budgets=not args.smoke,
        tpe_startup_trials=SMOKE_TPE_STARTUP if args.smoke else SearchSettings.tpe_startup_trials,
        fixed=parse_set_options(args.set), checkpoint_every=args.checkpoint_every, optuna_sampler=args.sampler,
        **budget,
    )


def _check_fixed_options(spaces, fixed: dict) -> None:
    """A bad --set fails here, not inside every trial."""
    from fer_search.training.config import TrainConfig

    for space in spaces:
        TrainConfig.from_flat({**space.point_config(next(iter(space.points))), **fixed})


def say_random_init(spaces) -> None:
    """Once, before the trials start: a point that asks for timm's weights where they are cached, and finds none."""
    from fer_search.models import create_initialised_model
    from fer_search.training import TrainConfig

    for space in spaces:
        for name in space.points:
            config = TrainConfig.from_flat(space.point_config(name))
            if config.pretrained == "timm_if_cached":
                _, init = create_initialised_model(config.arch, pretrained=config.pretrained, **config.model)
                if init.startswith("random init:"):
                    print(f"note: {space.family} {name} runs from random init, not from pretrained weights as the "
                          f"series did: {init.removeprefix('random init: ')} (recorded in its model file)", flush=True)


def _say_what_runs(args, settings, spaces, record) -> None:
    from fer_search.search.storage import experiment_path

    experiment = experiment_path(settings.storage, settings.name)
    if args.resume:  # the spaces, metric and epochs are the experiment's own, restored by Ray
        print(f"resuming {experiment}" + (f": {settings.num_samples} trials in all" if record else ""), flush=True)
        return
    own = "documented points: their own epochs" if settings.point_budgets else "documented points too"
    own += ", which ASHA lets them finish"
    print(f"search {experiment}: {', '.join(s.family for s in spaces)}; "
          f"{settings.num_samples} trials, up to {settings.max_epochs} epochs ({own}), "
          f"ASHA grace {settings.grace_period}, selecting on {settings.metric}", flush=True)


def _check_run_options(args, budget: dict[str, int]) -> None:
    """Numbers Tune or ASHA would take and then hang on, or fail deep inside with: one line each."""
    least = {**{key: 1 for key in budget}, "max_train_images": 0, "gpus": 0, "cpus": 1,
             "retries": 0, "reduction_factor": 2, "checkpoint_every": 1}  # ASHA's rungs need a factor of 2 or more
    values = {**budget, **{key: getattr(args, key)
                           for key in ("gpus", "cpus", "reduction_factor", "retries", "checkpoint_every")}}
    for key, value in values.items():
        if value is not None and value < least[key]:
            raise UserError(f"--{key.replace('_', '-')} must be at least {least[key]}, got {value}")
    if args.time_budget and args.epochs_budget:
        raise UserError("--time-budget or --epochs-budget: one budget, not both")
    if args.epochs_budget and args.resume:
        raise UserError("--resume goes on with the experiment's own plan; an --epochs-budget plans a new search")
    for key in ("cpus_per_trial", "gpus_per_trial", "time_budget", "epochs_budget"):
        value = getattr(args, key)
        if value is not None and not value > 0:
            raise UserError(f"--{key.replace('_', '-')} must be more than 0, got {value:g}")


def _family_names(families: str | None) -> list[str]:
    """"all", or comma-separated family names -> the names, checked."""
    from search_spaces import FAMILIES

    if not families:
        return []
    names = list(FAMILIES) if families == "all" else [n.strip() for n in families.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise UserError(f"unknown family {', '.join(unknown)}; families: {', '.join(FAMILIES)} (or all)")
    return names


def _spaces(args):
    from search_spaces import FAMILIES, load_space

    names = _family_names(args.families)
    if not names and not args.space:
        raise UserError(f"name a family to search ({', '.join(FAMILIES)}, or all) or give --space FILE")
    spaces = [load_space(n) for n in names] + [load_space(path) for path in args.space]
    families = [s.family for s in spaces]
    if len(set(families)) < len(families):
        raise UserError(f"family given twice: {', '.join(families)}; one space per family")
    return spaces


def _check_wandb() -> None:
    """Ray's W&B logger raises deep inside the run without a key: say what to do before starting."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled") or os.environ.get("WANDB_API_KEY"):
        return
    import wandb

    if not wandb.login(prompt=False, verify=False):
        raise UserError("--wandb found no W&B login: run `wandb login` or set WANDB_API_KEY, or log "
                        "offline with WANDB_MODE=offline (upload later with `wandb sync`)")


def _print_outcome(storage: str, name: str, metric: str, args, budget_ran_out: bool,
                   not_started: list[str] = ()) -> int:
    """The best trials, where everything is, and what to run next. `not_started`: trials that the spent time
    budget ended before they started (they have no files)."""
    from collections import Counter

    from fer_search.search import layout
    from fer_search.search.storage import experiment_path, is_uri

    trials = layout.list_trials(storage, name)
    counts = Counter(t.status for t in trials)
    counted = [f"{n} {status}" for status, n in counts.items()]
    if not_started:
        counted.append(f"{len(not_started)} not started")
    print("\n" + ", ".join(counted) + f" (of {len(trials) + len(not_started)} trials)")
    scored = [(t, s) for t, s in ((t, t.summary()) for t in trials) if s]
    metric = scored[0][1]["metric"] if scored else metric  # after --resume: the experiment's own
    scored.sort(key=lambda ts: -ts[1]["metrics"][metric])
    if scored:
        print(f"\n{'trial':<34} {'status':<14} {'epochs':>6} {'best':>5} {metric:>13} {'val macro-F1':>13} "
              f"{'test acc*':>10}")
        for trial, summary in scored[:10]:
            m = summary["metrics"]
            test = f"{m['test_acc']:.4f}" if "test_acc" in m else "-"
            print(f"{trial.name:<34} {trial.status:<14} {trial.epochs:>6} {summary['best_epoch']:>5} "
                  f"{m[metric]:>13.4f} {m['val_macro_f1']:>13.4f} {test:>10}")
        print("* test is reported, never used to select")
    from fer_search.search.budget import report_search

    report_search(storage, name, trials)
    for trial in trials:
        if trial.failure():
            print(f"failed:      {trial.name}: {trial.failure()}")
    collapsing = [t.name for t in trials if t.config.get("imbalance") == "both"]
    if collapsing:  # said once, in the outcome
        print(f"note:        {', '.join(collapsing)}: imbalance=both (weighted loss + oversampling) is the documented "
              "v3 combination that collapsed to predicting 'disgust' only; a low score is its expected result")
    quoted_storage = shlex.quote(storage)
    print(f"\nresults:     {experiment_path(storage, name)}  (each trial's best epoch: TRIAL/best_epoch_*/model.pt, "
          "probs.npz)")
    print(f"tensorboard: tensorboard --logdir {quoted_storage}")
    print(f"study:       python -m fer_search dashboard {shlex.quote(name)} --storage {quoted_storage}")
    out = " --out ensemble" if is_uri(storage) else ""  # the report and model go to a local folder
    print(f"next:        python -m fer_search ensemble --top 3 --storage {quoted_storage} --name {shlex.quote(name)}{out}")
    if counts[layout.RUNNING] or counts[layout.ERRORED] or budget_ran_out:
        command = ["run"] + ([args.families] if args.families else []) + [a for s in args.space for a in ("--space", s)]
        command += ["--data", args.data, "--storage", storage, "--name", name, "--resume"]
        if budget_ran_out:
            command += ["--time-budget", f"{args.time_budget:g}"]
        print(f"unfinished:  python -m fer_search {' '.join(shlex.quote(a) for a in command)}")
    if not scored:
        print("error: no trial finished an epoch; see error.txt in the trial folders", file=sys.stderr)
        return 1
    return 0

