"""`python -m fer_search <command>`: every command's options in one place, the work in the packages.

Heavy imports (torch, Ray) happen inside the handlers so `--help` and errors stay fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

from fer_search.cli_options import add_data_option, add_device_option, add_keep_test_copies
from fer_search.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fer_search",
        description="Hyperparameter search, ensembling and export for FER2013 facial-expression recognition.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train one configuration")
    p.add_argument("arch", help="model name (see `models`)")
    add_data_option(p)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the config's, 20)")
    p.add_argument("--time-budget", type=float, metavar="MINUTES",
                   help="instead of --epochs: measure this machine's speed and train the epochs that fit in MINUTES "
                        "from the command's start (the schedule anneals to its end); plan vs actual in OUT/plan.json")
    p.add_argument("--out", required=True, help="output folder for model.pt and metrics.csv")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training or model hyperparameter, e.g. --set lr=5e-4 --set dropout=0.4")
    add_device_option(p)
    p.add_argument("--seed", type=int, default=None, help="seed for the split and training")
    add_keep_test_copies(p)
    p.set_defaults(handler=_cmd_train)

    p = commands.add_parser("evaluate", help="score a model or ensemble file on a split")
    p.add_argument("model_file")
    add_data_option(p)
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--tta", choices=["none", "flip", "crops"], default=None, help="override the file's TTA")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    add_device_option(p)
    p.set_defaults(handler=_cmd_evaluate)

    p = commands.add_parser("predict", help="find the faces in images, videos or folders and classify each")
    p.add_argument("model_file", help="model.pt, ensemble.pt or an exported .onnx file (runs without PyTorch)")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_VIDEO_OR_DIR")
    p.add_argument("--faces", choices=["auto", "on", "off"], default="auto",
                   help="find faces and classify each; auto: for every image that is not 48x48; "
                        "off: the whole image, shrunk to 48x48 [%(default)s]")
    p.add_argument("--every", type=int, default=1, metavar="N", help="videos: classify every Nth frame [1]")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write copies with each face's box and label drawn")
    p.add_argument("--csv", dest="csv_out", help="also write the rows to this CSV file")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    add_device_option(p, "for PyTorch model files")
    p.set_defaults(handler=_cmd_predict)

    p = commands.add_parser("models", help="list registered models with parameter counts")
    p.set_defaults(handler=_cmd_models)

    p = commands.add_parser("data", help="data tools")
    data_commands = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    a = data_commands.add_parser("audit", help="class counts, imbalance, pixel statistics, duplicates, blanks")
    add_data_option(a)
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=_cmd_audit)

    _add_search_commands(commands)
    _add_analysis_commands(commands)
    return parser


def _add_search_commands(commands) -> None:
    from fer_search.search.cli import add_run_parser, add_spaces_parser
    from fer_search.search.reproduce_cli import add_reproduce_parser

    add_run_parser(commands)
    add_reproduce_parser(commands)
    add_spaces_parser(commands)


def _add_analysis_commands(commands) -> None:
    from analysis.cli import add_analysis_parsers

    add_analysis_parsers(commands)


def _cmd_train(args) -> int:
    started = time.time()  # a --time-budget counts from here
    from fer_search.data import describe_load, load_data
    from fer_search.training import TrainConfig, parse_set_options, train
    from fer_search.training.config import IMBALANCE_BOTH_NOTE

    if args.time_budget is not None and (args.epochs is not None or not args.time_budget > 0):
        raise UserError("--time-budget MINUTES (more than 0) plans the epochs: leave --epochs out")
    values = parse_set_options(args.set)
    values["arch"] = args.arch
    if args.epochs is not None:
        values["epochs"] = args.epochs
    if args.seed is not None:
        values["seed"] = args.seed
    config = TrainConfig.from_flat(values)
    if config.imbalance == "both":
        print(f"warning: {IMBALANCE_BOTH_NOTE}", file=sys.stderr)
    data = load_data(args.data, seed=config.seed, drop_test_copies=not args.keep_test_copies)
    print(describe_load(data))
    if args.time_budget:
        from pathlib import Path

        from fer_search.search import budget

        Path(args.out).mkdir(parents=True, exist_ok=True)
        config = budget.plan_train(config, data, args.time_budget, started, args.device, Path(args.out))
    result = train(config, data, device=args.device, out_dir=args.out)
    if args.time_budget:
        budget.report_train(Path(args.out), len(result.history))
    best = result.best.metrics
    print(f"\nbest epoch {result.best.epoch} ({result.finished_by}): val acc {best['val_acc']:.4f}, "
          f"val macro-F1 {best['val_macro_f1']:.4f}")
    if "test_acc" in best:
        print(f"test acc {best['test_acc']:.4f}, test macro-F1 {best['test_macro_f1']:.4f} (reported, never selected on)")
    print(f"model: {os.path.join(args.out, 'model.pt')}\nmetrics: {os.path.join(args.out, 'metrics.csv')}")
    return 0


def _cmd_evaluate(args) -> int:
    from fer_search.inference.predictor import load_predictor
    from fer_search.training import checkpoint
    from fer_search.training.metrics import format_report, full_report
    from fer_search.training.trainer import resolve_device

    entry = checkpoint.load(args.model_file)
    predictor = load_predictor(entry, device=str(resolve_device(args.device)), tta=args.tta)
    data = _evaluation_data(args, checkpoint.recorded_val_split(entry))
    split = data.split(args.split)
    if not split.labeled:
        raise UserError(f"the {args.split} split of {data.name} has no labels; use `predict` for unlabeled images")
    report = full_report(predictor.predict_proba(split.images), split.labels)
    report.update(model_file=args.model_file, data=data.name, split=args.split)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _evaluation_data(args, val_split: dict):
    """The data as the model file's validation split was carved from it (seed, fraction, test copies left out or
    not). `--split val` is refused where that split cannot be had: a file that records none, a refit model that
    trained on it, or data whose carve gives other images."""
    from fer_search.data import load_data

    if args.split == "val" and val_split.get("refit"):
        raise UserError(f"{args.model_file} was refit on train + validation: its validation split is training data "
                        "to it; evaluate it on --split test")
    if args.split == "val" and "seed" not in val_split:
        raise UserError(f"{args.model_file} does not record the validation split it was chosen on (a file of an "
                        "older fer_search, or of an overfit check); evaluate it on --split test")
    carve = {"seed": val_split["seed"], "val_fraction": val_split["fraction"],
             "drop_test_copies": val_split["drop_test_copies"]} if "seed" in val_split else {}
    data = load_data(args.data, progress=not args.json, **carve)
    if args.split == "val" and data.val_ids_hash() != val_split.get("ids_hash"):
        raise UserError(f"the validation split of {data.name} (seed {val_split['seed']}, fraction "
                        f"{val_split['fraction']:g}) is not the one {args.model_file} was chosen on: other data, or "
                        "another copy of it")
    return data


def _cmd_predict(args) -> int:
    from fer_search.inference import load_model_file
    from fer_search.inference.predict import format_table, predict_inputs

    model = load_model_file(args.model_file, device=args.device)
    table = predict_inputs(model, args.inputs, faces=args.faces, every=args.every, annotate=args.annotate)
    if args.json:
        # pandas writes missing values as null, but escapes '/' in paths; a round trip prints plain paths.
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=2))
    else:
        print(format_table(table))
    # Notes go to stderr so that --json output stays valid JSON.
    if args.csv_out:
        table.to_csv(args.csv_out, index=False)
        print(f"wrote {args.csv_out}", file=sys.stderr)
    if args.annotate:
        print(f"annotated copies in {args.annotate}", file=sys.stderr)
    return 0


def _cmd_models(args) -> int:
    from fer_search.models import describe_models

    rows = describe_models()
    width = max(len(r["name"]) for r in rows)
    print(f"{'model':<{width}}  {'family':<14} {'parameters':>12}  hyperparameters")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['family']:<14} {r['parameters']:>12,}  {', '.join(r['hparams'])}")
    return 0


def _cmd_audit(args) -> int:
    from fer_search.data import audit, format_audit, load_data

    data = load_data(args.data, val_fraction=0, progress=not args.json, drop_test_copies=False)
    result = audit(data)
    print(json.dumps(result, indent=2) if args.json else format_audit(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
