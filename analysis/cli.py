"""The `leaderboard`, `ensemble` and `export` sub-commands of `python -m fer_search`."""
from __future__ import annotations

import json
import os
import shlex
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

from analysis.dashboard import add_dashboard_parser
from fer_search.cli_options import (add_data_option, add_device_option, add_keep_test_copies, add_metric_option,
                                    add_storage_option)
from fer_search.errors import UserError

REFIT_ROW = "ensemble (refit)"  # --json: the refit ensemble's row


def add_analysis_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="every trial of a search, the best per family, imbalance comparison",
        description="Every trial of the chosen experiments (best first by the validation metric; test columns are "
                    "reported only; the node each ran on, once trials ran on several), the best trial per family, "
                    "the class-imbalance options compared, and the experiments' Optuna studies side by side.")
    _add_trial_options(p)
    p.add_argument("--csv", dest="csv_out", help="also write the full table (every config key a column) to this CSV")
    p.set_defaults(handler=cmd_leaderboard)

    p = subparsers.add_parser(
        "ensemble", help="combine a search's best trials into one model, with a report",
        description="Pick the top K finished trials by the validation metric, fit vote weights and a temperature "
                    "on validation, score validation and (once, reported only) test, and write OUT/report.md with "
                    "its figures, OUT/ensemble.pt (loads like a single model file) and, when the test split is "
                    "Kaggle's (test ids are CSV row numbers), OUT/submission.csv.")
    _add_trial_options(p, default_names="the newest experiment under storage")
    p.add_argument("--top", type=int, default=3, metavar="K",
                   help="members in the ensemble file (fewer usable: a warning, and those) [%(default)s]")
    p.add_argument("--method", choices=("mean", "greedy", "weighted"), default="greedy",
                   help="greedy = Caruana selection with replacement and bagging of K members from the --library "
                        "best trials; mean = soft vote of the K best; weighted = the K best, weights minimising "
                        "validation NLL [%(default)s]")
    p.add_argument("--library", type=int, default=20, metavar="L",
                   help="greedy: choose the K members among the L best trials by validation [%(default)s]")
    p.add_argument("--diverse", action="store_true", help="at most one member per model family")
    p.add_argument("--tta", nargs="?", const="flip", choices=("flip", "crops"),
                   help="re-run the members with test-time augmentation (needs --data): flip, or crops (ten "
                        "views, the crops each member trained on) [flip when given alone; default: the "
                        "members' stored probabilities]")
    p.add_argument("--refit", action="store_true",
                   help="also retrain each member on train + validation for the epochs validation chose, and "
                        "report that refit ensemble beside this one (needs --data; OUT/refit/ensemble.pt)")
    add_data_option(p, read_for="--tta and --refit")
    add_device_option(p, "for --tta and --refit")
    add_keep_test_copies(p)
    p.add_argument("--out", help="output folder [STORAGE/ensemble]")
    p.add_argument("--json", dest="json_out", metavar="FILE",
                   help="also write the scores (each member and the ensemble; validation, and test; the refit "
                        f"ensemble's test as {REFIT_ROW!r}; per member, the ensemble's gain over it with its "
                        "interval) as JSON")
    p.set_defaults(handler=cmd_ensemble)

    p = subparsers.add_parser(
        "export", help="a model or ensemble file as one ONNX or TorchScript file",
        description="Write one deployable file: float pixels (B, 1, 48, 48) in 0..255 in, class probabilities out, "
                    "normalisation, test-time views, vote and temperature inside. The file is checked against the "
                    "in-process model before the command succeeds.")
    p.add_argument("model_file")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    p.add_argument("--out", help="output file [MODEL_FILE with .onnx or .torchscript.pt]")
    p.set_defaults(handler=cmd_export)

    add_dashboard_parser(subparsers)


def _add_trial_options(p, default_names: str = "every experiment under storage") -> None:
    add_storage_option(p, "the search's storage folder or URI (s3://...)")
    p.add_argument("--name", nargs="+", metavar="NAME", help=f"experiment name(s) [{default_names}]")
    add_metric_option(p, searched=False)


@contextmanager
def _plain_warnings():
    """Warnings about skipped trials are messages for the user, not code locations."""
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def cmd_leaderboard(args) -> int:
    with _plain_warnings():
        return _leaderboard(args)


def _leaderboard(args) -> int:
    from analysis.leaderboard import find_trials, format_tables, leaderboard, search_metric
    from analysis.studies import study_table
    from fer_search.search.storage import StoragePath

    storage = StoragePath.of(args.storage)  # a local folder, or a bucket's URI
    trials = find_trials(storage, args.name)
    metric = search_metric(trials, args.metric)
    table = leaderboard(trials, metric)
    print(f"storage: {storage}")
    print(format_tables(table, metric))
    compared = study_table(list(dict.fromkeys(trial.path.parent for trial in trials)))  # in the experiments' order
    if not compared.empty:
        print("\nOptuna studies (trials by state; best = the objective of the best completed trial)")
        print(compared.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv_out:
        import pandas as pd

        configs = pd.DataFrame(list(table["config"])).add_prefix("config.")
        table.drop(columns="config").join(configs).to_csv(args.csv_out, index=False)
        print(f"wrote {args.csv_out}")
    return 0


def cmd_ensemble(args) -> int:
    with _plain_warnings():
        return _ensemble(args)


def _ensemble(args) -> int:
    from analysis.intervals import CONFIDENCE
    from analysis.outcome import describe
    from analysis.pipeline import make_ensemble
    from analysis.report import ENSEMBLE
    from fer_search.search import layout
    from fer_search.search.storage import StoragePath

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    if (args.tta or args.refit) and not args.data:
        raise UserError(f"{'--tta' if args.tta else '--refit'} needs the search's data: pass --data too")
    storage = StoragePath.of(args.storage)  # a local folder, or a bucket's URI
    if args.out is None and storage.local_path is None:
        raise UserError(f"--storage {storage} is not a local folder: pass --out DIR for the ensemble and its report")
    out = Path(args.out).absolute() if args.out else storage.local_path / "ensemble"
    names = args.name
    if not names:  # one search's trials, not every search's pooled: the newest, and say so
        names = layout.list_experiments(storage)[-1:]
        if names:
            print(f"experiment: {names[0]} (the newest under {storage}; --name picks others, or several)")
    run = make_ensemble(storage, names, out, top=args.top, method=args.method, library=args.library,
                        diverse=args.diverse, metric=args.metric, tta=args.tta, refit=args.refit, data_source=args.data,
                        keep_test_copies=args.keep_test_copies, device=args.device)
    ensemble, scores = run.ensemble, run.scores
    summary = scores.summary({**{m.name: float(w) for m, w in zip(ensemble.members, ensemble.weights)}, ENSEMBLE: 1.0})
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nensemble accuracy minus each member's, same images ({CONFIDENCE:.0%} paired-bootstrap interval; "
          "one that holds 0 cannot tell them apart):")
    for member in ensemble.members:
        print(f"  {member.name}: " + "; ".join(f"{split} {by_member[member.name]}"
                                              for split, by_member in scores.gains.items()))
    if args.json_out:
        table = json.loads(summary.to_json(orient="index"))
        for split, by_member in scores.gains.items():
            for member, gain in by_member.items():
                table[member].update({f"{split}_ensemble_gain": gain.gain, f"{split}_ensemble_gain_low": gain.low,
                                      f"{split}_ensemble_gain_high": gain.high})
        if run.refit_scores is not None:  # test only: validation is inside a refit member's training data
            table[REFIT_ROW] = {"weight": 1.0, "test_acc": run.refit_scores["accuracy"],
                                "test_macro_f1": run.refit_scores["macro_f1"], "test_ece": run.refit_scores["ece"]}
        Path(args.json_out).write_text(json.dumps(table, indent=2))
    chosen_from = f" chosen from the best {ensemble.library}" if ensemble.library else ""
    print(f"\n{args.method} ensemble of {sum(ensemble.weights > 0)} trial(s){chosen_from}, temperature "
          f"{ensemble.temperature:.3f}; "
          "members, weights and temperature chosen on validation only"
          + ("; test scored once, reported only" if "test" in scores.reports else ""))
    if run.refit_scores is not None:
        print(f"refit ensemble (members retrained on train + validation): test acc {run.refit_scores['accuracy']:.4f}, "
              f"macro-F1 {run.refit_scores['macro_f1']:.4f} (reported only)")
    for path in run.files.values():
        print(f"wrote {path}")
    experiments = list(dict.fromkeys(t.experiment for t in run.trials))
    print("\n" + textwrap.fill(describe(run.trials, ensemble, time_budget=_time_budgeted(storage, experiments)), 110))
    _print_where_to_look(run.report, storage, experiments)
    print(f"next:        python -m fer_search evaluate {shlex.quote(_shown(out / 'ensemble.pt'))} --data DATA")
    return 0


def _time_budgeted(storage: Path, experiments: list[str]) -> bool:
    """Whether a search was started with --time-budget: then a trial stopped early may be the budget's doing."""
    from fer_search.search.record import load_record

    records = [load_record(storage / name) for name in experiments]
    return any(record is not None and "--time-budget" in record.command for record in records)


def _print_where_to_look(report: Path, storage: Path, experiments: list[str]) -> None:
    quoted = shlex.quote(_shown(storage))
    print(f"\nreport:      {_shown(report)}  (members, per-class recall, learning curves, parameter importance)")
    print(f"tensorboard: tensorboard --logdir {quoted}  (every trial's curves, hyperparameters, confusion matrices)")
    for name in experiments:
        print(f"dashboard:   python -m fer_search dashboard {shlex.quote(name)} --storage {quoted}  (the Optuna study)")


def _shown(path) -> str:
    """A path as short as it is clear: relative below the working directory, else absolute; a bucket URI as is."""
    from fer_search.search.storage import is_uri

    if is_uri(path):
        return str(path)
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def cmd_export(args) -> int:
    from analysis.export import export

    path, difference = export(args.model_file, args.format, args.out)
    print(f"wrote {path} ({args.format}; float pixels (B, 1, 48, 48) in 0..255 -> probabilities (B, 7)); "
          f"max difference from the in-process model on a check batch: {difference:.1e}")
    return 0
