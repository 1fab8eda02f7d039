"""Where a search's Optuna study lives, and reading it back (Ray-free).

Every experiment keeps its study in a database Optuna supports: by default `study.db` (SQLite) in
the experiment folder; `run --study-storage URL` takes any other (PostgreSQL, MySQL, ...) for teams
that share one. The experiment's record (`experiment.json`, record.py) says where the study is, for
`dashboard`, `leaderboard`, `ensemble` and `run --continue-study`: `study_name`, and `study_storage`
null for the folder's own `study.db` (so the folder can be moved or copied as a whole). An experiment
without a record (`reproduce`, or a search started from Python) has its own `study.db`, whose one study
is its study.

A study that already holds trials is continued by a later `run`: TPE goes on from its whole history
(the documented points ran already, so they are not enqueued again). A study records the families
it searched and the objective it maximised; a continuation must search the same ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy.exc import SQLAlchemyError

from fer_search.errors import UserError
from fer_search.search.record import load_record

STUDY_DB = "study.db"
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


def recorded_storage(location: StudyLocation, experiment_path: str | Path) -> str | None:
    """The study's database as the experiment's record keeps it: None for the folder's own study.db."""
    return None if location.storage == sqlite_url(Path(experiment_path) / STUDY_DB) else location.storage


def recorded(experiment_path: str | Path) -> StudyLocation | None:
    """The study of an experiment folder, as its record says; None for an experiment that kept none (one from
    before studies were kept in a database: its study is in Ray's searcher state only)."""
    folder = Path(experiment_path)
    record = load_record(folder)
    if record is not None and record.study_name is not None:
        return StudyLocation(record.study_storage or sqlite_url(folder / STUDY_DB), record.study_name)
    own = folder / STUDY_DB
    if not own.is_file():
        return None
    # Without a record: the one study in the folder's own database, whose name stays when the folder is renamed
    # or copied (the folder's name where it holds several).
    url = sqlite_url(own)
    try:
        names = optuna.get_all_study_names(storage=url)
    except SQLAlchemyError as exc:
        raise _unreadable(url, exc) from None
    return StudyLocation(url, names[0] if len(names) == 1 else folder.name)


def find(experiment_path: str | Path) -> StudyLocation:
    """The study of an experiment folder (see recorded())."""
    folder = Path(experiment_path)
    if not folder.is_dir():
        raise UserError(f"no experiment folder {folder} (check --storage and the experiment name)")
    location = recorded(folder)
    if location is None:
        raise UserError(f"experiment {folder} has no study database (made before studies were kept in one?); "
                        "pass --study-storage URL")
    return location


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
        raise _unreadable(location.storage, exc) from None


def _unreadable(storage: str, exc: SQLAlchemyError) -> UserError:
    return UserError(f"cannot open the study database {storage}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")


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
