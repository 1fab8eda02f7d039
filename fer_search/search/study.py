"""Where a search's Optuna study lives, and reading it back (Ray-free).

Every experiment keeps its study in a database Optuna supports: by default `study.db` (SQLite) in
the experiment folder; `run --study-storage URL` takes any other (PostgreSQL, MySQL, ...) for teams
that share one. The experiment folder's `study.json` says where the study is, for `dashboard`,
`leaderboard`, `ensemble` and `run --continue-study`: `{"study_name": ..., "storage": URL}`, with
`"storage": null` for the folder's own `study.db` (so the folder can be moved or copied as a whole).

A study that already holds trials is continued by a later `run`: TPE goes on from its whole history
(the documented points ran already, so they are not enqueued again). A study records the families
it searched and the objective it maximised; a continuation must search the same ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy.exc import SQLAlchemyError

from fer_search.errors import UserError

STUDY_DB = "study.db"
STUDY_FILE = "study.json"
FAMILIES_ATTR, OBJECTIVE_ATTR = "families", "objective"  # study user attributes, set when it starts
EXPERIMENT_ATTR = "experiment"  # trial user attribute: the experiment that ran it


@dataclass(frozen=True)
class StudyLocation:
    storage: str  # an Optuna storage URL
    study_name: str


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).expanduser().absolute()}"


def database_url(url: str) -> str:
    """A --study-storage URL, with a SQLite file's path made absolute here, once (later commands run elsewhere)."""
    if "://" not in url:
        raise UserError(f"--study-storage {url}: expected a database URL such as sqlite:////abs/path/studies.db "
                        "or postgresql://user@host/db")
    if url.startswith("sqlite:///"):
        return sqlite_url(Path(url[len("sqlite:///"):]))
    return url


def default_location(storage: str, experiment: str) -> StudyLocation:
    """study.db in the experiment folder, named after the experiment."""
    if "://" in storage:
        raise UserError(f"--storage {storage} is not a folder here, so the study database cannot go in the experiment "
                        "folder: pass --study-storage URL (e.g. sqlite:////home/me/studies.db or postgresql://...)")
    return StudyLocation(sqlite_url(Path(storage, experiment, STUDY_DB)), experiment)


def record(experiment_path: str | Path, location: StudyLocation) -> None:
    """Write study.json into a local experiment folder (a bucket experiment's study is where --study-storage says)."""
    if "://" in str(experiment_path):
        return
    folder = Path(experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    own = location.storage == sqlite_url(folder / STUDY_DB)
    (folder / STUDY_FILE).write_text(json.dumps({"study_name": location.study_name,
                                                 "storage": None if own else location.storage}, indent=2))


def find(experiment_path: str | Path) -> StudyLocation:
    """The study of an experiment folder, from its study.json."""
    folder = Path(experiment_path)
    if not folder.is_dir():
        raise UserError(f"no experiment folder {folder} (check --storage and the experiment name)")
    try:
        found = json.loads((folder / STUDY_FILE).read_text())
    except FileNotFoundError:
        raise UserError(f"experiment {folder} has no {STUDY_FILE} (made before studies were kept in a database?); "
                        "pass --study-storage URL") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{folder / STUDY_FILE} is not valid JSON ({exc})") from None
    return StudyLocation(found["storage"] or sqlite_url(folder / STUDY_DB), found["study_name"])


def load(location: StudyLocation) -> optuna.Study:
    study = _open(location)
    if study is None:
        raise UserError(f"no study '{location.study_name}' in {location.storage}")
    return study


def _open(location: StudyLocation) -> optuna.Study | None:
    """The study, or None where there is none yet (a SQLite file that does not exist is not created)."""
    if location.storage.startswith("sqlite:///") and not Path(location.storage[len("sqlite:///"):]).is_file():
        return None
    try:
        return optuna.load_study(study_name=location.study_name, storage=location.storage)
    except KeyError:
        return None
    except SQLAlchemyError as exc:
        raise UserError(f"cannot open the study database {location.storage}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0]}") from None


def load_study(experiment_path: str | Path) -> optuna.Study:
    """The Optuna study of an experiment folder."""
    return load(find(experiment_path))


def existing_trials(location: StudyLocation, families: list[str], objective: str) -> int:
    """How many trials the study holds already (0: a new study). A study that exists must have searched the same
    families for the same objective: TPE's history would not fit the search otherwise."""
    study = _open(location)
    if study is None:
        return 0
    searched, maximised = study.user_attrs.get(FAMILIES_ATTR), study.user_attrs.get(OBJECTIVE_ATTR)
    if searched is not None and searched != families:
        # In this order too: the sampler's "family" choice must be the same Optuna distribution as before.
        raise UserError(f"study '{location.study_name}' searched {','.join(searched)}; continue it with the same "
                        f"families in the same order (got {','.join(families)}), or start a new study")
    if maximised is not None and maximised != objective:
        raise UserError(f"study '{location.study_name}' maximised {maximised}; continue it with --metric "
                        f"{maximised.removeprefix('best_')}, or start a new study")
    return len(study.trials)


def label_new_study(study: optuna.Study, families: list[str], objective: str) -> None:
    study.set_user_attr(FAMILIES_ATTR, list(families))
    study.set_user_attr(OBJECTIVE_ATTR, objective)
