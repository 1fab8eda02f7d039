"""`dashboard`: optuna-dashboard on a search's study (history, parameter importance, trials), on loopback by default."""
from __future__ import annotations

import shlex
from pathlib import Path

from fer_search.cli_options import add_storage_option
from fer_search.errors import UserError


def add_dashboard_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dashboard", help="serve optuna-dashboard on a search's Optuna study",
        description="Serve optuna-dashboard (optimisation history, parameter importance, every trial's parameters and "
                    "values) on the study of an experiment, and print the TensorBoard command for the same "
                    "experiment. Listens on 127.0.0.1 unless --host says otherwise; Ctrl-C stops it.")
    p.add_argument("experiment", nargs="?", metavar="EXPERIMENT", help="experiment name [the newest under --storage]")
    add_storage_option(p, "the search's storage folder")
    p.add_argument("--study-storage", metavar="URL",
                   help="serve this study database instead (every study in it), e.g. a team's postgresql://...")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 shows the dashboard to your whole network [%(default)s]")
    p.add_argument("--port", type=int, default=8080, help="[%(default)s]")
    p.set_defaults(handler=cmd_dashboard)


def cmd_dashboard(args) -> int:
    from fer_search.search import layout, study

    if args.study_storage:
        database, what, log_dir = study.database_url(args.study_storage), "every study", None
    else:
        storage = Path(args.storage).absolute()
        name = args.experiment or _newest(layout.list_experiments(storage), storage)
        location = study.find(storage / name)
        study.load(location)  # a missing study fails here, not in the browser
        database, what, log_dir = location.storage, f"study '{location.study_name}'", storage / name
    print(f"optuna-dashboard: http://{args.host}:{args.port}/dashboard/  ({what} in {database}; Ctrl-C stops it)")
    if log_dir is not None:
        print(f"tensorboard:      tensorboard --logdir {shlex.quote(str(log_dir))} --host 127.0.0.1", flush=True)

    import optuna_dashboard

    try:
        optuna_dashboard.run_server(study.optuna_storage(database), host=args.host, port=args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
                        "pass another --port") from None
    return 0


def _newest(experiments: list[str], storage: Path) -> str:
    if not experiments:
        raise UserError(f"no experiment under {storage} (run a search first, or pass --storage)")
    return experiments[-1]
