"""The start guard of a planned search (no Ray): a trial starts only where its whole schedule fits in what is
left of the budget, so a planned search never starts a trial that the deadline would cut before its schedule
anneals. In ray_adaptations.py the searcher asks it before each new trial, and BudgetLedger tells it each epoch
and each end.

The guard is built from the plan (SearchSettings.budget_guard, see budget.py): per trial kind ("family/point"
for a documented point, "tpe" for a TPE trial) the seconds and epochs of its whole schedule, the lanes (trials
at once), and an --epochs-budget in trial epochs. Under a time budget the plan's first wave starts whatever
Ray's start-up took (the planner found that it fits); under an epochs budget every trial's whole schedule is
committed when it starts, and what a trial ended early (ASHA) leaves is released.
"""
from __future__ import annotations

import time


class StartGuard:
    def __init__(self, guard: dict):
        self.seconds: dict[str, float] = guard["seconds"]
        self.epochs: dict[str, float] = guard["epochs"]
        self.lanes: int = guard.get("lanes", 0)
        self.epochs_budget: float | None = guard.get("epochs_budget")
        self.epochs_spent = 0.0  # trial epochs trained
        self.committed: dict[str, float] = {}  # trial id -> epochs its schedule may still train
        self.claims = 0

    def claim(self, trial_id: str, kind: str, deadline: float | None) -> bool:
        """Whether a new trial of `kind` has room for its whole schedule before `deadline` (time.time(), or None)
        and within an epochs budget; if so its epochs are committed to it."""
        seconds = self.seconds.get(kind, max(self.seconds.values(), default=0.0))
        epochs = self.epochs.get(kind, max(self.epochs.values(), default=0.0))
        first_wave = self.claims < self.lanes
        if deadline is not None and not first_wave and time.time() + seconds > deadline:
            return False
        if self.epochs_budget is not None and self.epochs_spent + sum(self.committed.values()) + epochs > \
                self.epochs_budget + 1e-9:
            return False
        self.committed[trial_id] = epochs
        self.claims += 1
        return True

    def may_make_room(self) -> bool:
        """Whether a running trial's early end could still make room (an epochs budget with trials running)."""
        return self.epochs_budget is not None and any(self.committed.values())

    def spend_epoch(self, trial_id: str) -> None:
        self.epochs_spent += 1
        if trial_id in self.committed:
            self.committed[trial_id] = max(0.0, self.committed[trial_id] - 1)

    def release(self, trial_id: str) -> None:
        self.committed.pop(trial_id, None)

    def spent(self) -> bool:
        """Whether an epochs budget is used up."""
        return self.epochs_budget is not None and self.epochs_spent >= self.epochs_budget - 1e-9
