"""Where a search's Optuna study lives, and reading it back (Ray-free).

Every experiment keeps its study in storage Optuna supports: by default `study.db` (SQLite) in the
experiment folder, or with `--storage-shared` `study.journal` there (Optuna's JournalStorage with its
file backend, made for shared file systems, where SQLite's locks are not safe); `run --study-storage
URL` takes any other database (PostgreSQL, MySQL, ...) for teams that share one, or a journal file
(`journal:///abs/path`). The experiment's record (`experiment.json`, record.py) says where the study
is, for `dashboard`, `leaderboard`, `ensemble`, `run --continue-study` and `run --resume`:
`study_name`, and `study_storage` null for the folder's own study file (so the folder can be moved or
copied as a whole: a resumed copy opens its own). An experiment without a record (`reproduce`, or a
search started from Python) has its own study file, whose one study is its study.

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
from fer_search.search.storage import is_uri

STUDY_DB, STUDY_JOURNAL = "study.db", "study.journal"
JOURNAL_PREFIX = "journal:///"  # + an absolute path: a JournalStorage file
# What a study database that does not answer raises: SQLite's "database is locked", a network database gone,
# a journal file on an unreachable file system.
STORAGE_ERRORS = (SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError)
FAMILIES_ATTR, OBJECTIVE_ATTR = "families", "objective"  # study user attributes, set when it starts
EXPERIMENT_ATTR = "experiment"  # trial user attribute: the experiment that ran it


@dataclass(frozen=True)
class StudyLocation:
    storage: str  # an Optuna storage URL
    study_name: str


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).expanduser().absolute()}"


def journal_url(path: Path) -> str:
    return f"{JOURNAL_PREFIX}{Path(path).expanduser().absolute()}"


def _file_of(url: str) -> Path | None:
    """The file of a SQLite or journal URL (None for a database server)."""
    for prefix in ("sqlite:///", JOURNAL_PREFIX):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


def optuna_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage of a location's URL: a journal file, or a database (opened, and its tables made if new)."""
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(_file_of(url))))
    return optuna.storages.RDBStorage(url)


def database_url(url: str) -> str:
    """A --study-storage URL, with a SQLite or journal file's path made absolute here, once (later commands run
    elsewhere)."""
    if "://" not in url:
        raise UserError(f"--study-storage {url}: expected a database URL such as sqlite:////abs/path/studies.db, "
                        "postgresql://user@host/db or journal:////abs/path/studies.journal")
    if url.startswith("sqlite:///"):
        return sqlite_url(Path(url[len("sqlite:///"):]))
    if url.startswith(JOURNAL_PREFIX):
        return journal_url(Path(url[len(JOURNAL_PREFIX):]))
    return url


def default_location(storage: str, experiment: str, shared: bool = False) -> StudyLocation:
    """The experiment folder's own study, named after the experiment: study.db, or on a shared file system
    (shared=True) study.journal."""
    if is_uri(storage):
        raise UserError(f"--storage {storage} is not a folder here, so the study database cannot go in the experiment "
                        "folder: pass --study-storage URL (e.g. sqlite:////home/me/studies.db or postgresql://...)")
    folder = Path(storage, experiment)
    return StudyLocation(journal_url(folder / STUDY_JOURNAL) if shared else sqlite_url(folder / STUDY_DB), experiment)


def _own_urls(folder: Path) -> tuple[str, str]:
    return journal_url(folder / STUDY_JOURNAL), sqlite_url(folder / STUDY_DB)


def own_url(folder: Path) -> str:
    """The URL of an experiment folder's own study file: study.journal where there is one, else study.db."""
    journal, sqlite = _own_urls(folder)
    return journal if (folder / STUDY_JOURNAL).is_file() else sqlite


def recorded_storage(location: StudyLocation, experiment_path: str | Path) -> str | None:
    """The study's storage as the experiment's record keeps it: None for the folder's own study file."""
    return None if location.storage in _own_urls(Path(experiment_path)) else location.storage


def recorded(experiment_path: str | Path) -> StudyLocation | None:
    """The study of an experiment folder, as its record says; None for an experiment that kept none (one from
    before studies were kept in a database: its study is in Ray's searcher state only)."""
    folder = Path(experiment_path)
    record = load_record(folder)
    if record is not None and record.study_name is not None:
        return StudyLocation(record.study_storage or own_url(folder), record.study_name)
    url = own_url(folder)
    if not _file_of(url).is_file():
        return None
    # Without a record: the one study in the folder's own database, whose name stays when the folder is renamed
    # or copied (the folder's name where it holds several).
    try:
        names = optuna.get_all_study_names(storage=optuna_storage(url))
    except STORAGE_ERRORS as exc:
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


def _open(location: StudyLocation, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study | None:
    """The study, or None where there is none yet (a SQLite or journal file that does not exist is not created)."""
    path = _file_of(location.storage)
    if path is not None and not path.is_file():
        return None
    try:
        return optuna.load_study(study_name=location.study_name, storage=optuna_storage(location.storage), sampler=sampler,
                                 pruner=optuna.pruners.NopPruner())
    except KeyError:
        return None
    except STORAGE_ERRORS as exc:
        raise _unreadable(location.storage, exc) from None


def open_for_search(location: StudyLocation, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The study a resumed search goes on with, sampling with `sampler` (the searcher's, with its random state)."""
    study = _open(location, sampler)
    if study is None:
        raise UserError(f"no study '{location.study_name}' in {location.storage}: the experiment's study is not "
                        "where its record says (was the experiment moved without its study file?)")
    return study


def _unreadable(storage: str, exc: Exception) -> UserError:
    lines = str(exc).splitlines()
    return UserError(f"cannot open the study database {storage}: {exc.__class__.__name__}: {lines[0] if lines else ''}")


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
