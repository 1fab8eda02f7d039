"""The start guard of a planned search (no Ray): a trial starts only where its whole schedule fits in what is
left of the budget, so a planned search never starts a trial that the deadline would cut before its schedule
anneals. In ray_adaptations.py the searcher asks it before each new trial, and BudgetLedger tells it each epoch
and each end.

The guard is built from the plan (SearchSettings.budget_guard, see budget.py): per trial kind ("family/point"
for a documented point, "tpe" for a TPE trial) the seconds and epochs of its whole schedule, the lanes (trials
at once), and an --epochs-budget in trial epochs. Under a time budget the plan's first wave starts whatever
Ray's start-up took (the planner found that it fits); under an epochs budget every trial's whole schedule is
committed when it starts, and what a trial ended early (ASHA) leaves is released.

Where the plan allows it ("tail": the plan decided the trials and their epochs), a TPE trial whose whole schedule no
longer fits gets the epochs that do (at least the plan's minimum), so a lane works to the end of the budget and
that trial's schedule still anneals. Seconds per epoch are the plan's, or what this search's epochs really took
where that is longer (measured speed drifts: the driver and Ray share the CPUs with the trials).
"""
from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict, deque

from fer_search.search.sampler import TPE_POINT as TPE

OBSERVED_EPOCHS = 16  # the latest epoch times per trial kind that the guard's estimate follows


class StartGuard:
    def __init__(self, guard: dict):
        self.seconds: dict[str, float] = guard["seconds"]
        self.epochs: dict[str, float] = guard["epochs"]
        self.lanes: int = guard.get("lanes", 0)
        self.epochs_budget: float | None = guard.get("epochs_budget")
        self.epochs_spent = 0.0  # trial epochs trained
        self.tail: dict | None = guard.get("tail")  # {"min_epochs", "epoch_s", "first_epoch_extra_s"} or None
        self.committed: dict[str, float] = {}  # trial id -> epochs its schedule may still train
        self.claims = 0
        self.kinds: dict[str, str] = {}  # trial id -> its kind
        self.last_epoch_at: dict[str, float] = {}  # trial id -> when it last reported an epoch
        self.epoch_times: dict[str, deque] = defaultdict(lambda: deque(maxlen=OBSERVED_EPOCHS))

    def claim(self, trial_id: str, kind: str, deadline: float | None) -> int | None:
        """The epochs a new trial of `kind` may run: its whole schedule where that fits before `deadline`
        (time.time(), or None) and within an epochs budget, a shorter one for a lane's last TPE trial where the
        plan allows it, else None (no room). The epochs are committed to the trial."""
        epochs = self.epochs.get(kind, max(self.epochs.values(), default=0.0))
        granted = epochs
        first_wave = self.claims < self.lanes
        if deadline is not None and not first_wave and time.time() + self._seconds(kind, epochs) > deadline:
            granted = self._epochs_in(kind, seconds=deadline - time.time())
        if granted is not None and self.epochs_budget is not None and self._epochs_left() < granted - 1e-9:
            granted = self._epochs_in(kind, epochs=self._epochs_left())
        if granted is None:
            return None
        self.committed[trial_id] = granted
        self.kinds[trial_id] = kind
        self.claims += 1
        return int(granted)

    def _observed_epoch_s(self, kind: str) -> float:
        """The median of this search's latest epoch times for `kind` (0 before any)."""
        observed = self.epoch_times.get(kind)
        return statistics.median(observed) if observed else 0.0

    def _seconds(self, kind: str, epochs: float) -> float:
        planned = self.seconds.get(kind, max(self.seconds.values(), default=0.0))
        extra = self.tail["first_epoch_extra_s"] if self.tail else 0.0
        return max(planned, extra + epochs * self._observed_epoch_s(kind))

    def _epochs_in(self, kind: str, *, seconds: float | None = None, epochs: float | None = None) -> int | None:
        """A lane's last TPE trial: the most epochs that fit in `seconds` or `epochs`, if at least the plan's
        minimum (and fewer than a whole trial's); None where the plan allows no such trial."""
        if self.tail is None or kind != TPE:
            return None
        if seconds is not None:
            epoch_s = max(self.tail["epoch_s"], self._observed_epoch_s(kind))
            epochs = (seconds - self.tail["first_epoch_extra_s"]) / epoch_s
        fitting = math.floor(epochs + 1e-9)
        return fitting if self.tail["min_epochs"] <= fitting < self.epochs.get(kind, math.inf) else None

    def _epochs_left(self) -> float:
        return self.epochs_budget - self.epochs_spent - sum(self.committed.values())

    def may_make_room(self) -> bool:
        """Whether a running trial's early end could still make room (an epochs budget with trials running)."""
        return self.epochs_budget is not None and any(self.committed.values())

    def spend_epoch(self, trial_id: str) -> None:
        self.epochs_spent += 1
        if trial_id in self.committed:
            self.committed[trial_id] = max(0.0, self.committed[trial_id] - 1)
        now = time.time()
        if trial_id in self.last_epoch_at and trial_id in self.kinds:  # the first epoch also starts the process
            self.epoch_times[self.kinds[trial_id]].append(now - self.last_epoch_at[trial_id])
        self.last_epoch_at[trial_id] = now

    def release(self, trial_id: str) -> None:
        self.committed.pop(trial_id, None)
        self.last_epoch_at.pop(trial_id, None)

    def spent(self) -> bool:
        """Whether an epochs budget is used up."""
        return self.epochs_budget is not None and self.epochs_spent >= self.epochs_budget - 1e-9
