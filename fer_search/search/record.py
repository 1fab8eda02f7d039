"""What defines an experiment, in one file beside its trials, so that `run --resume` continues the same search.

`STORAGE/NAME/experiment.json` holds the families and space files searched, the data (path, a
hash of its images and labels, the validation split's seed, fraction and image ids), the
metric, the trial and epoch budgets, the command that started it, and where its Optuna study is (see
study.py). `--resume` takes what the user leaves out from here, and refuses data or a validation
split that differ: the trials already run were scored on that validation set, and a new one would
make their scores incomparable.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fer_search.data.types import FERData
from fer_search.errors import UserError
from fer_search.search.storage import StoragePath

RECORD_FILE = "experiment.json"


@dataclass
class ExperimentRecord:
    families: list[str]  # built-in families searched
    space_files: list[str]  # absolute paths of `--space` files
    data: str  # `--data`: an absolute path, or "synthetic"
    data_hash: str  # images and labels of every split (see content_hash())
    val_seed: int
    val_fraction: float
    val_ids_hash: str  # which images make up the validation split
    keep_test_copies: bool
    metric: str
    max_epochs: int
    num_samples: int  # grows when a resume asks for more
    command: list[str] = field(default_factory=list)  # the `run` arguments that started it
    study_name: str | None = None  # the Optuna study its trials joined (None: a record older than study databases)
    study_storage: str | None = None  # that study's storage URL; None: the folder's own study.db or study.journal
    plan: dict | None = None  # a planned --time-budget / --epochs-budget (budget.plan_record), and what ran ("actual")

    def save(self, experiment: str | Path | StoragePath) -> None:
        # Whole or not at all (storage.py): a driver killed here leaves the old record or the new one.
        (StoragePath.of(experiment) / RECORD_FILE).write_text(json.dumps(asdict(self), indent=2))

    def check_same_data(self, data: FERData) -> None:
        """Refuse data whose images, labels or validation split differ from the experiment's."""
        if content_hash(data) != self.data_hash:
            raise UserError(f"--resume: the data at {data.name} differs from the data this experiment searched "
                            f"({self.data}); resume with that data, or start a new --name")
        if val_ids_hash(data) != self.val_ids_hash:
            raise UserError(f"--resume: the validation split differs from the experiment's (seed {self.val_seed}, "
                            f"fraction {self.val_fraction:g}); its trials were scored on that one")


def load_record(experiment: str | Path | StoragePath) -> ExperimentRecord | None:
    """The experiment's record (in a local folder or a bucket); None for an experiment started before records
    existed."""
    path = StoragePath.of(experiment) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        fields = json.loads(path.read_text())
        if "data_fingerprint" in fields:  # the key's name in records written before 2026-12-05
            fields["data_hash"] = fields.pop("data_fingerprint")
        return ExperimentRecord(**fields)
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: unreadable experiment record ({exc})") from None


def content_hash(data: FERData) -> str:
    """SHA-256 of every split's images and labels (train, val, test, in that order)."""
    digest = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        if split is not None:
            digest.update(split.images.tobytes())
            digest.update(split.labels.tobytes())
    return digest.hexdigest()


def val_ids_hash(data: FERData) -> str:
    return data.val_ids_hash()
