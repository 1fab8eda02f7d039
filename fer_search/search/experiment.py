"""Which experiment a `run` starts or goes on with, and what it records (Ray-free).

`choose` decides it from the command line before any data is read: a new experiment (refused where one of that
name exists, before its record would be written over), a resumed one (`--resume`: what the user leaves out
comes from its record, what differs is refused or ignored with a warning; one never started is started), or a
new one whose trials join another experiment's Optuna study (`--continue-study`). `study_location` says where
its study is, `write_record` keeps its record (record.py) before the search starts.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from fer_search.errors import UserError
from fer_search.search import layout, study
from fer_search.search.record import ExperimentRecord, content_hash, load_record, val_ids_hash
from fer_search.search.settings import SearchSettings, resolve_storage
from fer_search.search.storage import StoragePath, experiment_path, is_uri


@dataclass
class Chosen:
    storage: str  # a URI, or an absolute local folder (every node gets this one)
    name: str | None  # None: a new experiment, named after its families once they are known
    record: ExperimentRecord | None  # a resumed experiment's record (None: new, or kept by an older fer_search)


def choose(args) -> Chosen:
    """The experiment `run` asked for; with --resume, args takes what the user left out from its record."""
    if args.resume and (args.study_storage or args.continue_study):
        raise UserError("--resume continues the experiment's own study; drop --study-storage and --continue-study")
    storage = resolve_storage(args.storage)  # a relative path or ~, resolved once here
    if is_uri(storage) and not (args.resume or args.study_storage):
        study.default_location(storage, "")  # refuses before the bucket is reached: it can hold no study.db
    name = args.name
    if name is None and args.resume:
        found = layout.list_experiments(storage) if StoragePath.of(storage).is_dir() else []
        if not found:
            raise UserError(f"nothing to resume under {StoragePath.of(storage)}; pass --name NAME")
        name = found[-1]
    record = None
    if args.resume:
        if not layout.experiment_started(storage, name):
            print(f"nothing was started at {experiment_path(storage, name)} yet: starting it", flush=True)
            args.resume = False
        else:
            record = load_record(experiment_path(storage, name))
    elif name is not None:  # before its record (and with it where its study is) would be written over
        layout.check_can_start(storage, name, resume=False)
    if record is not None:
        _take_from_record(args, record)
    return Chosen(storage, name, record)


def _take_from_record(args, record: ExperimentRecord) -> None:
    """--resume: what the user leaves out comes from the experiment's record; what differs is refused
    (families, space files) or, where the restored search keeps its own, warned about and ignored."""
    defaults = args.run_parser
    given = {key for key, value in vars(args).items() if value != defaults.get_default(key)}
    families = [n.strip() for n in args.families.split(",") if n.strip()] if args.families else []
    spaces = sorted(str(Path(path).absolute()) for path in args.space)
    if (families or spaces) and (sorted(families), spaces) != (sorted(record.families), sorted(record.space_files)):
        searched = ", ".join(record.families + record.space_files)
        raise UserError(f"--resume: this experiment searched {searched}; leave FAMILY and --space out to resume it, "
                        "or start a new --name for another search")
    args.families = ",".join(record.families) or None
    args.space = list(record.space_files)
    if "data" not in given:
        args.data = record.data
    if "seed" in given and args.seed != record.val_seed:
        raise UserError(f"--resume: --seed {args.seed} would carve another validation split than the experiment's "
                        f"(seed {record.val_seed}); leave --seed out")
    if "num_samples" not in given:
        args.num_samples = record.num_samples
    if args.num_samples < record.num_samples:
        raise UserError(f"--resume: --num-samples {args.num_samples} is fewer than the experiment's "
                        f"{record.num_samples}; it can only grow")
    same = {key for key in ("metric", "max_epochs", "keep_test_copies") if getattr(args, key) == getattr(record, key)}
    kept = sorted((given - same) & {"metric", "max_epochs", "grace_period", "reduction_factor", "max_train_images",
                                    "set", "smoke", "retries", "wandb", "keep_test_copies"})
    args.seed, args.keep_test_copies, args.metric = record.val_seed, record.keep_test_copies, record.metric
    args.max_epochs = record.max_epochs
    if kept:
        print("warning: --resume keeps the experiment's own settings; ignoring "
              + ", ".join("--" + key.replace("_", "-") for key in kept), file=sys.stderr)


def study_location(args, storage: str, name: str, families: list[str], objective: str) -> study.StudyLocation | None:
    """The study: the one --continue-study or --study-storage names, else study.db in the experiment folder
    (None with --resume: the experiment continues its own)."""
    if args.resume:
        return None
    if args.continue_study:
        if args.study_storage:
            location = study.StudyLocation(study.database_url(args.study_storage), args.continue_study)
        elif is_uri(storage):
            raise UserError(f"--continue-study {args.continue_study} with --storage {storage}: pass --study-storage "
                            "URL too, the database that holds the study")
        else:
            location = study.find(f"{storage}/{args.continue_study}")
    elif args.study_storage:
        location = study.StudyLocation(study.database_url(args.study_storage), name)
    else:  # a new experiment's own study file: new too (run_search refuses an experiment that exists)
        return study.default_location(storage, name, shared=args.storage_shared)
    trials = study.existing_trials(location, families, objective)
    if args.continue_study and not trials:
        raise UserError(f"--continue-study {args.continue_study}: study '{location.study_name}' in "
                        f"{location.storage} has no trials to continue")
    print(f"study: {'continuing' if trials else 'new'} '{location.study_name}'"
          + (f" ({trials} trials so far)" if trials else "") + f" in {location.storage}", flush=True)
    return location


def write_record(args, record: ExperimentRecord | None, spaces, data, settings: SearchSettings,
                 plan: dict | None) -> ExperimentRecord | None:
    """The experiment's record, written before the search starts: a resumed one's trials in all (checked against the
    data it is given), or a new one's (with its planned budget, if any). None: a resume of an experiment that has
    no record (an older fer_search's)."""
    experiment = experiment_path(settings.storage, settings.name)
    if record is not None:
        record.check_same_data(data)
        record.num_samples = settings.num_samples
        record.save(experiment)
    elif not args.resume:
        record = _new_record(args, spaces, data, settings)
        record.plan = plan
        record.save(experiment)
    return record


def _new_record(args, spaces, data, settings: SearchSettings) -> ExperimentRecord:
    from fer_search.data.types import VAL_FRACTION

    location = settings.study_location()
    return ExperimentRecord(
        families=[s.family for s in spaces if s.source.startswith("search_spaces/")],
        space_files=[str(Path(path).absolute()) for path in args.space],
        data=args.data if args.data == "synthetic" else str(Path(args.data).absolute()),
        data_hash=content_hash(data), val_seed=args.seed, val_fraction=VAL_FRACTION,
        val_ids_hash=val_ids_hash(data), keep_test_copies=args.keep_test_copies, metric=settings.metric,
        max_epochs=settings.max_epochs, num_samples=settings.num_samples, command=sys.argv[1:],
        study_name=location.study_name,
        study_storage=study.recorded_storage(location, f"{settings.storage}/{settings.name}"))
