"""What this driver session's search was asked for, shared by the Ray parts of the search (Ray-free).

Ray pickles the stopper, the search generator, the searcher and the scheduler with the experiment and
restores them on --resume; they read `current`, not pickled copies, so a resumed search runs under the time
budget given now, in the folder and with the study where they are now. The CLI reads what the last search
in this process ended with (budget_ran_out, trials_not_started).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_search.search.guard import StartGuard

if TYPE_CHECKING:
    from fer_search.search.ray_adaptations import ExperimentOptunaSearch
    from fer_search.search.reconcile import RestoredTrial
    from fer_search.search.study import StudyLocation


@dataclass
class Resumed:
    """What a --resume of this driver session goes on from (reconcile.py settles the rest with it)."""
    storage: str  # where the experiment folder is now (it may have been moved or copied there)
    name: str
    study: StudyLocation | None  # where its study is now (None: where its searcher's saved state says)
    restored: list[RestoredTrial]  # the trials Ray restores
    trials_so_far: int  # the trials it has made: the restored ones, and those that ended in its folder


class Session:
    """What this driver session was asked for (one object, `current`)."""

    deadline: float | None = None  # time.time() after which running trials stop at their next result
    num_samples: int | None = None  # on resume: the trials the experiment now has in all (it may grow)
    ran_out = False  # whether the last search ended with its time budget spent
    not_started: list[str] = []  # trials the spent budget ended before they started (BudgetASHA)
    guard: StartGuard | None = None  # a planned budget (guard.py): a trial starts only where its schedule fits
    resumed: Resumed | None = None  # None: a new search
    searcher: ExperimentOptunaSearch | None = None  # the searcher of this search, once it has opened its study

    def start(self, budget_s: float | None, num_samples: int | None, guard: dict | None = None) -> None:
        self.deadline = time.time() + budget_s if budget_s else None
        self.num_samples = num_samples
        self.ran_out = False
        self.not_started = []
        self.guard = StartGuard(guard) if guard else None

    def flush_study_writes(self) -> None:
        """At the search's end: what still waits is said (the next --resume writes it)."""
        waiting = self.searcher.flush_writes() if self.searcher is not None else 0
        if waiting:
            print(f"warning: the study database did not answer: {waiting} write(s) of trial results wait; "
                  "`run --resume` writes them", file=sys.stderr, flush=True)

    def end(self) -> None:
        """Nothing of a finished search applies to the next one in this process (tests run several)."""
        self.ran_out = budget_spent()
        self.deadline = self.num_samples = self.guard = self.resumed = self.searcher = None


current = Session()


def budget_spent() -> bool:
    """Whether the running search's --time-budget (or --epochs-budget) has run out."""
    if current.deadline is not None and time.time() >= current.deadline:
        return True
    return current.guard is not None and current.guard.spent()


def budget_ran_out() -> bool:
    """Whether the last search in this process ended because its --time-budget ran out."""
    return current.ran_out


def trials_not_started() -> list[str]:
    """The trials of the last search in this process that its spent time budget ended before they started."""
    return list(current.not_started)
