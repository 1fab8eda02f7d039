"""The options several commands share, each defined once: its default, its choices and its help (standard library
and constants only, so that every command's parser imports it without importing another command's module)."""
from __future__ import annotations

import argparse
import os

from fer_search.training.config import SELECTION_METRICS

DATA_ENV = "FER2013_ROOT"  # where --data points by default
DATA_FALLBACK = "./data/fer2013"
DATA_FORMS = "FER2013 path (any form) or 'synthetic'"
STORAGE_DEFAULT = "./runs"  # a search's results folder, and where the analysis commands look for it
DEFAULT_METRIC = "val_acc"


def data_default() -> str:
    return os.environ.get(DATA_ENV, DATA_FALLBACK)


def add_data_option(parser: argparse.ArgumentParser, *, read_for: str | None = None) -> None:
    """--data. A command that reads the data only for some of its options (`read_for` names them) has no default."""
    if read_for is None:
        parser.add_argument("--data", default=data_default(),
                            help=f"{DATA_FORMS} [${DATA_ENV} or {DATA_FALLBACK}: %(default)s]")
    else:
        parser.add_argument("--data", help=f"the search's data, a {DATA_FORMS}; {read_for} read it")


def add_storage_option(parser: argparse.ArgumentParser, help: str) -> None:
    """--storage: what the folder holds for this command is said by `help`."""
    parser.add_argument("--storage", default=STORAGE_DEFAULT, help=f"{help} [%(default)s]")


def add_metric_option(parser: argparse.ArgumentParser, *, searched: bool) -> None:
    """--metric: the validation metric a search selects on, or (searched=False) ranks an existing search by."""
    if searched:
        parser.add_argument("--metric", choices=SELECTION_METRICS, default=DEFAULT_METRIC,
                            help="validation metric that selects (test is only reported) [%(default)s]")
    else:
        parser.add_argument("--metric", choices=SELECTION_METRICS,
                            help="validation metric to rank by [the one the search used]")


def add_device_option(parser: argparse.ArgumentParser, used_for: str = "") -> None:
    parser.add_argument("--device", default="auto",
                        help=f"cpu, cuda or auto{', ' + used_for if used_for else ''} [%(default)s]")


def add_keep_test_copies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-test-copies", action="store_true",
                        help="keep training images identical to test images (by default they are left out, "
                             "so test never rewards memorisation)")
