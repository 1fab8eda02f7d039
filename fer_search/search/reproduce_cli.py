"""`reproduce`: run the documented points of the series' families as they ran, then the table of what the
series' runs printed beside what this run measured alike (reproduce.py). Ray is imported only once it runs."""
from __future__ import annotations

import sys
import time

from fer_search.errors import UserError
from fer_search.search.cli import _add_shared_options, _check_wandb, _family_names, say_random_init

# --smoke: every point for this many epochs of this many training images (the tests' end-to-end check).
SMOKE = {"epochs": 2, "max_train_images": 512}


def add_reproduce_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="run the series' documented points as they ran and compare them with the runs' figures",
        description="Run only the documented points of the families, each as the series' run behind its figures "
                    "ran (its architecture, input, augmentation, optimiser, batch, schedule, epochs, early stopping), "
                    "several at once where resources allow, then print and write (reproduce.md, .csv, .json beside "
                    "the trials) what the runs printed beside what this run measured alike, and the held-out test "
                    "figures the series never had.")
    p.add_argument("families", metavar="FAMILY[,FAMILY...]|all",
                   help="simple_cnn, deeper_cnn, attention_cnn, resnet, mobilevit (the series' 'vit' run), or all")
    _add_shared_options(p, storage_help="results folder (local: the table is written beside the trials)",
                        name_help="experiment name [reproduce-FAMILIES-DATE-TIME]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a trainer option every point gets over its own (e.g. --set precision=fp32 on a CPU without "
                        "bf16); the table says so")
    p.add_argument("--smoke", action="store_true",
                   help=f"a tiny check of the whole path: every point for {SMOKE['epochs']} epochs of "
                        f"{SMOKE['max_train_images']} training images")
    p.set_defaults(handler=_cmd_reproduce)


def _cmd_reproduce(args) -> int:
    from fer_search.search import layout, reproduce
    from fer_search.search.settings import local_cpu_count, local_gpu_count, plan_resources, resolve_storage
    from fer_search.search.storage import is_uri
    from search_spaces import load_documented, series_families

    names = series_families() if args.families == "all" else _family_names(args.families)
    spaces = [load_documented(name) for name in names]
    if args.smoke:  # still each point's own budget (ASHA lets it finish), only a tiny one
        for space in spaces:
            for point in space.points.values():
                point["epochs"] = SMOKE["epochs"]
    if args.max_train_images is not None and args.max_train_images < 0:
        raise UserError(f"--max-train-images must be at least 0, got {args.max_train_images}")
    storage = resolve_storage(args.storage)
    if is_uri(storage):
        raise UserError(f"reproduce writes its table beside the trials: --storage must be a local folder, got {storage}")
    name = args.name or "reproduce-" + "-".join(names) + time.strftime("-%Y%m%d-%H%M%S")
    settings = _settings(args, spaces, storage, name)
    if args.wandb:
        _check_wandb()
    plan_resources(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count())

    from fer_search.data import describe_load, load_data
    from fer_search.data.types import VAL_FRACTION

    data = load_data(args.data, seed=args.seed, val_fraction=VAL_FRACTION, drop_test_copies=not args.keep_test_copies)
    print(describe_load(data))
    print(f"reproduce {storage}/{name}: {settings.num_samples} documented points of {', '.join(names)}, "
          + ("--smoke" if args.smoke else "each with its own budget"), flush=True)

    from fer_search.search.ray_tune import run_search

    say_random_init(spaces)
    run_search(spaces, data, settings)
    trials = layout.list_trials(storage, name)
    rows = reproduce.build_table(spaces, trials)
    md_path, csv_path, markdown = reproduce.write_table(rows, f"{storage}/{name}", header=_header(args, names, data,
                                                        settings), notes=reproduce.point_notes(spaces))
    print("\n" + markdown + f"\ntable: {md_path}\n       {csv_path}")
    unmeasured = [t.name for t in trials if t.status != layout.COMPLETED]
    if unmeasured:
        print(f"error: {', '.join(unmeasured)} did not run to their end; see error.txt in the trial folders",
              file=sys.stderr)
        return 1
    return 0


def _settings(args, spaces, storage: str, name: str):
    from fer_search.search.settings import SearchSettings
    from fer_search.training.config import TrainConfig, parse_set_options

    epochs = [space.points[point]["epochs"] for space in spaces for point in space.points]
    # Every point runs its own epochs and ASHA lets it finish; max_epochs only sizes ASHA's rungs.
    settings = SearchSettings(
        storage=storage, name=name, num_samples=len(epochs), max_epochs=max(epochs),
        grace_period=1, seed=args.seed, cpus=args.cpus, gpus=args.gpus, gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial or 1,
        max_train_images=args.max_train_images or (SMOKE["max_train_images"] if args.smoke else 0),
        wandb_project=args.wandb_project if args.wandb else None, experiment_type="reproduce",
        fixed=parse_set_options(args.set),
    )
    for space in spaces:  # a bad --set fails here, not inside every trial
        TrainConfig.from_flat({**space.point_config(next(iter(space.points))), **settings.fixed})
    return settings


def _header(args, names: list[str], data, settings) -> list[str]:
    from fer_search.data.types import VAL_FRACTION

    sizes = ", ".join(f"{split} {len(images):,}" for split, images in data.splits().items())
    header = [f"# The documented series, run as it ran: {', '.join(names)}", "",
              f"Data: {data.name} ({sizes}; version {data.version()}): validation a stratified "
              f"{VAL_FRACTION:.0%} of train (seed {args.seed}) with identical images kept on one side, test the "
              f"source's own; experiment {settings.storage}/{settings.name}, {time.strftime('%Y-%m-%d')}. The runs' "
              "figures: search_spaces/<family>.py (REPORTED), from the series' committed notebook outputs."]
    if args.smoke:
        header += ["", f"**Not as the runs ran: --smoke, {SMOKE['epochs']} epochs per point.**"]
    if settings.max_train_images:
        header += ["", f"**Not as the runs ran: capped at {settings.max_train_images:,} training images per epoch.**"]
    if settings.fixed:
        header += ["", "Every point with " + ", ".join(f"{k}={v}" for k, v in settings.fixed.items()) + " (--set)."]
    return header
