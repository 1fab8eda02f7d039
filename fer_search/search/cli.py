"""`run` and `spaces`: the search's command line. Ray is imported only once a search starts."""
from __future__ import annotations

import os
import shlex
import sys
import time
import warnings

from fer_search.errors import UserError

# ASHA's grace period defaults to a third of max-epochs (0 here): a trial on a one-cycle or cosine schedule
# scores low until its learning rate comes down, and must not be judged at epoch 2.
DEFAULTS = {"num_samples": 20, "max_epochs": 20, "grace_period": 0, "max_train_images": 0}
# --smoke: a tiny end-to-end budget: about a minute on 2 CPUs with --data synthetic (3,600 training images).
SMOKE = {"num_samples": 4, "max_epochs": 3, "grace_period": 1, "max_train_images": 4096}
WANDB_PROJECT = "facial-expression-recognition"  # the documented series' project
# On a cluster a node can go away mid-search; its trials then start again from their last checkpoint elsewhere.
CLUSTER_MAX_FAILURES = 3


def add_run_parser(subparsers) -> None:
    from fer_search.cli import add_keep_test_copies

    p = subparsers.add_parser(
        "run", help="search a model family (Ray Tune + Optuna TPE + ASHA)",
        description="Search one or more model families: the documented configurations run first, then TPE "
                    "searches around them while ASHA stops weak trials early.")
    p.add_argument("families", nargs="?", metavar="FAMILY[,FAMILY...]|all",
                   help="simple_cnn, deeper_cnn, attention_cnn, resnet, vit, mobilevit, or all")
    p.add_argument("--space", action="append", default=[], metavar="FILE",
                   help="your own search space file (.py/.yaml/.json; see `spaces`), instead of or besides FAMILY")
    p.add_argument("--data", default=os.environ.get("FER2013_ROOT", "./data/fer2013"),
                   help="FER2013 path (any form) or 'synthetic' [$FER2013_ROOT or ./data/fer2013: %(default)s]")
    p.add_argument("--storage", default="./runs", help="results folder, or a URI Ray supports (s3://...) [%(default)s]")
    p.add_argument("--name", help="experiment name [FAMILIES-DATE-TIME; with --resume: the newest under storage]")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search (finished trials are kept, unfinished ones continue)")
    p.add_argument("--num-samples", metavar="N", type=int,
                   help=f"trials, documented points included [{DEFAULTS['num_samples']}]")
    p.add_argument("--max-epochs", metavar="N", type=int,
                   help=f"epochs of a trial ASHA never stops [{DEFAULTS['max_epochs']}]")
    p.add_argument("--grace-period", metavar="N", type=int,
                   help="epochs before ASHA may stop a trial [a third of --max-epochs]")
    p.add_argument("--reduction-factor", metavar="N", type=int, default=3,
                   help="ASHA keeps 1/N of the trials per rung [%(default)s]")
    p.add_argument("--metric", choices=("val_acc", "val_macro_f1"), default="val_acc",
                   help="validation metric that selects (test is only reported) [%(default)s]")
    p.add_argument("--cpus", metavar="N", type=int, help="CPUs the search may use [all]")
    p.add_argument("--gpus", metavar="N", type=int, help="GPUs the search may use [every visible one]")
    p.add_argument("--gpus-per-trial", type=float, metavar="F",
                   help="GPU share of one trial, e.g. 0.25 runs 4 on a GPU "
                        "[per family: 0.25 CNNs, 0.5 resnet/mobilevit, 1 vit]")
    p.add_argument("--cpus-per-trial", metavar="N", type=int, default=1, help="CPUs of one trial [%(default)s]")
    p.add_argument("--study-storage", metavar="URL",
                   help="database of the Optuna study (any Optuna supports: sqlite:////abs/studies.db, "
                        "postgresql://..., mysql://...); a study named like the experiment there is continued "
                        "[study.db in the experiment folder]")
    p.add_argument("--continue-study", metavar="EXPERIMENT",
                   help="a new experiment whose trials join EXPERIMENT's study: TPE goes on from its history and the "
                        "documented points are not run again (with --study-storage: the study EXPERIMENT there)")
    p.add_argument("--address", help="connect to a running Ray cluster: auto or HOST:PORT (see docs/cluster.md)")
    p.add_argument("--storage-shared", action="store_true",
                   help="with --address: --storage is a folder every node sees at the same path (e.g. an NFS mount); "
                        "without it a local folder is refused on a cluster of more than one node")
    p.add_argument("--ship-code", action="store_true",
                   help="with --address: send this checkout's fer_search and search_spaces to every node (Ray "
                        "runtime_env), so nodes without the install, or with another version, run it")
    p.add_argument("--max-failures", metavar="N", type=int,
                   help="times a failed trial starts again from its last checkpoint, e.g. after losing its node "
                        f"[{CLUSTER_MAX_FAILURES} with --address, else 0]")
    p.add_argument("--time-budget", type=float, metavar="MINUTES", help="stop the search after this long")
    p.add_argument("--seed", metavar="N", type=int, default=0,
                   help="seed of the validation split, TPE and training [%(default)s]")
    p.add_argument("--max-train-images", metavar="N", type=int, help="cap on training images per epoch, 0 = all [0]")
    add_keep_test_copies(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a trainer or model option every trial gets, over what its space says (e.g. --set "
                        "precision=fp32)")
    p.add_argument("--wandb", action="store_true", help="also log every trial to Weights & Biases")
    p.add_argument("--wandb-project", default=WANDB_PROJECT, help="W&B project [%(default)s]")
    p.add_argument("--smoke", action="store_true",
                   help="tiny budget: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in SMOKE.items()))
    p.set_defaults(handler=_cmd_run)


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
    from fer_search.search import layout
    from fer_search.search.settings import (SearchSettings, local_cpu_count, local_gpu_count, plan_resources,
                                            resolve_storage)
    from fer_search.training.config import TrainConfig, parse_set_options

    spaces = _spaces(args)
    budget = {key: getattr(args, key) if getattr(args, key) is not None else (SMOKE if args.smoke else DEFAULTS)[key]
              for key in DEFAULTS}
    budget["grace_period"] = budget["grace_period"] or max(1, budget["max_epochs"] // 3)
    for key, value in budget.items():
        least = 0 if key == "max_train_images" else 1
        if value < least:
            raise UserError(f"--{key.replace('_', '-')} must be at least {least}, got {value}")
    if args.max_failures is not None and args.max_failures < 0:
        raise UserError(f"--max-failures must be at least 0, got {args.max_failures}")
    if args.ship_code and args.address is None:
        raise UserError("--ship-code sends this checkout to a cluster's nodes: add --address (a search on this machine "
                        "runs this checkout already)")
    storage = resolve_storage(args.storage)
    if storage != args.storage:
        print(f"storage: {storage} (--storage {args.storage})")
    name = args.name
    if name is None:
        if args.resume:
            found = layout.list_experiments(storage) if "://" not in storage else []
            if not found:
                raise UserError(f"nothing to resume under {storage}; pass --name NAME")
            name = found[-1]
        else:
            name = "-".join(s.family for s in spaces) + time.strftime("-%Y%m%d-%H%M%S")
    settings = SearchSettings(
        storage=storage, name=name, metric=args.metric, seed=args.seed, cpus=args.cpus, gpus=args.gpus,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial, address=args.address,
        storage_shared=args.storage_shared, ship_code=args.ship_code,
        max_failures=(args.max_failures if args.max_failures is not None
                      else CLUSTER_MAX_FAILURES if args.address else 0),
        reduction_factor=args.reduction_factor,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        wandb_project=args.wandb_project if args.wandb else None, fixed=parse_set_options(args.set), **budget,
    )
    settings.study = _study_location(args, storage, name, [s.family for s in spaces], settings.objective)
    for space in spaces:  # a bad --set fails here, not inside every trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # imbalance=both of a documented point
            TrainConfig.from_flat({**space.point_config(next(iter(space.points))), **settings.fixed})
    if args.wandb:
        _check_wandb()
    if args.address is None:
        # Fail before decoding the data: a GPU trial on a machine without one would wait forever.
        plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())

    from fer_search.data import describe_load, load_data

    data = load_data(args.data, seed=args.seed, drop_test_copies=not args.keep_test_copies)
    print(describe_load(data))
    if args.resume:  # the budget and spaces are the experiment's own, restored by Ray
        print(f"resuming {settings.storage}/{name}", flush=True)
    else:
        print(f"search {settings.storage}/{name}: {', '.join(s.family for s in spaces)}; "
              f"{settings.num_samples} trials, up to {settings.max_epochs} epochs, "
              f"ASHA grace {settings.grace_period}, selecting on {settings.metric}", flush=True)

    from fer_search.search.ray_tune import run_search

    run_search(spaces, data, settings, resume=args.resume)
    if "://" in storage:
        print(f"\nresults: {storage}/{name}")
        return 0
    return _print_outcome(storage, name, settings.metric, args)


def _study_location(args, storage: str, name: str, families: list[str], objective: str):
    """The study: the one --continue-study or --study-storage names, else study.db in the experiment folder
    (None with --resume: the experiment continues its own)."""
    from fer_search.search import study

    if args.resume:
        if args.study_storage or args.continue_study:
            raise UserError("--resume continues the experiment's own study; drop --study-storage and --continue-study")
        return None
    if args.continue_study:
        if args.study_storage:
            location = study.StudyLocation(study.database_url(args.study_storage), args.continue_study)
        elif "://" in storage:
            raise UserError(f"--continue-study {args.continue_study} with --storage {storage}: pass --study-storage "
                            "URL too, the database that holds the study")
        else:
            location = study.find(f"{storage}/{args.continue_study}")
    elif args.study_storage:
        location = study.StudyLocation(study.database_url(args.study_storage), name)
    else:  # a new experiment's own study.db: new too (run_search refuses an experiment that exists)
        return study.default_location(storage, name)
    trials = study.existing_trials(location, families, objective)
    if args.continue_study and not trials:
        raise UserError(f"--continue-study {args.continue_study}: study '{location.study_name}' in "
                        f"{location.storage} has no trials to continue")
    print(f"study: {'continuing' if trials else 'new'} '{location.study_name}'"
          + (f" ({trials} trials so far)" if trials else "") + f" in {location.storage}", flush=True)
    return location


def _spaces(args):
    from search_spaces import FAMILIES, load_space

    names = []
    if args.families:
        names = list(FAMILIES) if args.families == "all" else [n.strip() for n in args.families.split(",") if n.strip()]
        unknown = [n for n in names if n not in FAMILIES]
        if unknown:
            raise UserError(f"unknown family {', '.join(unknown)}; families: {', '.join(FAMILIES)} (or all)")
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


def _print_outcome(storage: str, name: str, metric: str, args) -> int:
    """The best trials, where everything is, and what to run next."""
    from collections import Counter

    from fer_search.search import layout

    trials = layout.list_trials(storage, name)
    counts = Counter(t.status for t in trials)
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()) + f" (of {len(trials)} trials)")
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
    quoted_storage = shlex.quote(storage)
    print(f"\nresults:     {storage}/{name}  (best/model.pt, best/probs.npz per trial)")
    print(f"tensorboard: tensorboard --logdir {quoted_storage}")
    print(f"study:       python -m fer_search dashboard {shlex.quote(name)} --storage {quoted_storage}")
    print(f"next:        python -m fer_search ensemble --top 3 --storage {quoted_storage} --name {shlex.quote(name)}")
    if counts[layout.RUNNING] or counts[layout.ERRORED]:
        command = ["run"] + ([args.families] if args.families else []) + [a for s in args.space for a in ("--space", s)]
        command += ["--data", args.data, "--storage", storage, "--name", name, "--resume"]
        print(f"unfinished:  python -m fer_search {' '.join(shlex.quote(a) for a in command)}")
    if not scored:
        print("error: no trial finished an epoch; see error.txt in the trial folders", file=sys.stderr)
        return 1
    return 0
