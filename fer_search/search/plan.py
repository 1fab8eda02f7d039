"""A budget is a plan: how many trials, how many epochs each, and when they end, from measured speed.

Pure arithmetic (no torch, no Ray): speed.py measures what an epoch costs on this machine, budget.py
feeds the costs in and applies the plan to the search. The planner lays the trials out on the lanes
(trials running at once) in the order the search starts them: the documented points first, then TPE
trials. A trial is planned only where its whole schedule fits before the budget ends, so a one-cycle or
cosine schedule anneals to its end; a TPE trial holds its lane for the epochs ASHA is expected to let
it run (each rung keeps 1/eta of the trials), and the freed lane takes the next trial.

What the plan fixes depends on what the user fixed:

| given               | epochs of a TPE trial (E)                        | trials (N)                     |
|---------------------|--------------------------------------------------|--------------------------------|
| neither             | up to DEFAULT_TPE_EPOCHS, fewer so that the budget | as many as the budget holds    |
|                     | holds eta trials per lane (and one beyond the     |                                |
|                     | points)                                           |                                |
| --num-samples only  | the most with which all N fit                    | N                              |
| --max-epochs only   | E                                                | as many as the budget holds    |
| both                | E                                                | N (the plan says how many fit) |

ASHA's grace period is E / eta unless given; when every trial has a lane from the start (N <= lanes),
stopping one would free a lane nothing waits for, so ASHA gets no rung (grace = E). With a time budget and E not
given, each documented point that names no epochs then fills its own lane: E is what the slowest trial fits, and a
point on a faster network runs the more epochs its lane holds, rather than leave its lane idle to the deadline.

Where the plan decides both (neither is given), a lane's last trials may get a shorter schedule: once a whole
E-epoch trial no longer fits in what is left, a TPE trial of the epochs that do fit (at least TAIL_FRACTION of
E) still anneals to its end before the deadline. Without them a lane stands idle from its last whole trial's
end (ASHA stops most trials early) to the deadline.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import asdict, dataclass, field

from fer_search.errors import UserError
from fer_search.search.sampler import TPE_POINT as TPE

DEFAULT_TPE_EPOCHS = 20  # a TPE trial's epochs when neither the user nor the budget says otherwise (run's default)
# Kept back from a time budget: measured speed drifts by a few percent over a run (other processes, the
# driver's own work), and a trial that overruns the deadline is cut before its schedule ends.
SLACK = 0.04
# Allowances, not measurements: starting Ray and the first trial processes (each imports torch and maps the
# data set) before the first epoch, and after the last one Ray's shut-down and the outcome. The outcome's
# "plan vs actual" shows what they really took.
START_UP_S = 25.0
WIND_DOWN_S = 10.0
MAX_TRIALS = 10_000  # the planner's own bound when it decides the number of trials
# A lane's last trial runs at least this share of E: a shorter schedule could hardly be among the best trials.
TAIL_FRACTION = 0.5


@dataclass(frozen=True)
class Cost:
    """What one trial costs on the planned layout."""

    epoch_s: float  # seconds per epoch: training, validation and test prediction, the checkpoint
    first_epoch_extra_s: float = 0.0  # the first epoch's extra (operators set up on first use)

    def seconds(self, epochs: float) -> float:
        return self.first_epoch_extra_s + epochs * self.epoch_s


@dataclass(frozen=True)
class Point:
    """A documented point the search would start with."""

    family: str
    name: str
    epochs: int | None  # its own documented epochs; None: it gets the TPE trials' epochs, and ASHA may stop it
    cost: Cost


@dataclass(frozen=True)
class Budget:
    seconds: float | None = None  # wall-clock seconds from the start of the command
    epochs: float | None = None  # epochs of the full training set, all trials together
    elapsed_s: float = 0.0  # spent before planning (loading the data, measuring)
    epoch_fraction: float = 1.0  # one trial epoch as a share of the full training set (--max-train-images)

    def describe(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds / 60:g} min"
        return f"{self.epochs:g} epochs of the full training set"


@dataclass(frozen=True)
class Request:
    """What the user fixed; None = the plan decides."""

    num_samples: int | None = None
    max_epochs: int | None = None
    grace_period: int | None = None
    reduction_factor: int = 3


@dataclass
class PlannedTrial:
    family: str
    point: str  # the documented point's name, or "tpe"
    epochs: int  # its whole schedule
    expected_epochs: float  # what ASHA is expected to let it run (= epochs where ASHA cannot stop it)
    start_s: float  # expected, from the first trial's start
    full_s: float  # seconds of its whole schedule
    expected_s: float  # seconds it is expected to hold its lane

    @property
    def key(self) -> str:
        return trial_key(self.family, self.point)

    @property
    def end_s(self) -> float:
        return self.start_s + self.expected_s


@dataclass
class Plan:
    budget: str  # what was given, in words
    lanes: int  # trials at once
    tpe_epochs: int
    grace_period: int
    milestones: list[int]  # ASHA's rungs: the epochs at which it compares trials
    reduction_factor: int
    num_samples: int  # the search's trial count: requested, or the most the budget could hold (ASHA's stops)
    trials: list[PlannedTrial]  # what the plan expects to run, in order
    start_s: float  # the first trial's expected start, from the start of the command
    deadline_s: float | None = None  # a time budget's end, from the start of the command
    left_out: list[str] = field(default_factory=list)  # documented points that cannot fit: "family/name"
    notes: list[str] = field(default_factory=list)
    layout: str = ""  # the machine side, in words (budget.py: trials x threads, device)
    tail_min_epochs: int | None = None  # the shortest schedule a lane's last TPE trial may get (None: no such trial)
    # Documented points given more than E to fill their own lane ("family/point" -> epochs; see the module's notes).
    point_epochs: dict[str, int] = field(default_factory=dict)
    tpe_cost: Cost | None = None  # what a TPE trial's epochs cost (the guard sizes the shorter last trials with it)

    @property
    def expected_end_s(self) -> float:
        """From the start of the command."""
        return self.start_s + max((t.end_s for t in self.trials), default=0.0)

    @property
    def total_epochs(self) -> float:
        return sum(t.expected_epochs for t in self.trials)

    def guard(self) -> dict[str, dict[str, float]]:
        """Per trial kind ("family/point", or "tpe"): the seconds and epochs of its whole schedule. The search
        starts a trial only where that fits in what is left of the budget."""
        seconds: dict[str, float] = {}
        epochs: dict[str, float] = {}
        for t in self.trials:
            seconds[t.key] = max(seconds.get(t.key, 0.0), t.full_s)
            epochs[t.key] = max(epochs.get(t.key, 0.0), t.epochs)
        tail = None
        if self.tail_min_epochs and self.tpe_cost is not None:
            tail = {"min_epochs": self.tail_min_epochs, "epoch_s": self.tpe_cost.epoch_s,
                    "first_epoch_extra_s": self.tpe_cost.first_epoch_extra_s}
        return {"seconds": seconds, "epochs": epochs, "tail": tail}

    @property
    def tail_epochs(self) -> list[int]:
        """The shorter schedules of the lanes' last TPE trials, in order."""
        return [t.epochs for t in self.trials if t.point == TPE and t.epochs < self.tpe_epochs]

    def to_dict(self) -> dict:
        record = asdict(self)
        record.update(expected_end_s=self.expected_end_s, total_epochs=self.total_epochs)
        return record


def trial_key(family: str, point: str) -> str:
    """How the budget guard names a trial kind: "family/point" for a documented point, "tpe" for any TPE trial
    (with several families TPE picks the family, so a TPE trial is priced as the slowest family's)."""
    return TPE if point == TPE else f"{family}/{point}"


def asha_milestones(epochs: int, grace: int, eta: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace, grace*eta, ... below `epochs` (Ray's rungs)."""
    out, milestone = [], grace
    while milestone < epochs:
        out.append(milestone)
        milestone *= eta
    return out


def expected_epochs(epochs: int, milestones: list[int], eta: int) -> float:
    """Epochs a trial is expected to run when each rung keeps 1/eta of the trials that reach it."""
    total, previous, surviving = 0.0, 0, 1.0
    for milestone in [*milestones, epochs]:
        total += (milestone - previous) * surviving
        previous, surviving = milestone, surviving / eta
    return total


def plan_search(budget: Budget, lanes: int, points: list[Point], tpe: Cost, request: Request) -> Plan:
    """Lay the search out on `lanes` lanes within `budget`; UserError if not even one trial fits."""
    if (budget.seconds is None) == (budget.epochs is None):
        raise ValueError("a budget is either seconds or epochs")
    start_s = budget.elapsed_s + START_UP_S
    notes = []

    def lay_out(epochs: int) -> tuple[list[PlannedTrial], list[str]]:  # whole trials only: they decide E
        return _lay_out(budget, lanes, points, tpe, request, epochs)

    epochs = request.max_epochs
    if epochs is None and request.num_samples:
        epochs = _most_epochs(lambda e: len(lay_out(e)[0]) >= request.num_samples,
                              _epochs_ceiling(budget, points, tpe, start_s))
        if epochs is None:
            notes.append(f"{request.num_samples} trials do not fit whole, even at one epoch each: the plan holds "
                         "what fits")
    if epochs is None:
        epochs = _default_epochs(lay_out, points, lanes, request.reduction_factor)
    # The plan decides the trials and their epochs: the lanes' last trials may be shorter, so that no lane idles
    # to the deadline. Trials or epochs the user fixed are kept as given.
    tail_min = None if request.num_samples or request.max_epochs else max(1, math.ceil(epochs * TAIL_FRACTION))
    trials, left_out = _lay_out(budget, lanes, points, tpe, request, epochs, tail_min=tail_min)
    if not trials:
        raise UserError(_too_small(budget, points, tpe, start_s, request.max_epochs or 1))
    stoppable = {(p.family, p.name) for p in points if p.epochs is None}
    if not any(t.point == TPE or (t.family, t.point) in stoppable for t in trials):
        epochs = min(epochs, request.max_epochs or DEFAULT_TPE_EPOCHS)  # no trial takes them: the default, not a bound
    num_samples = request.num_samples or len(trials)
    idle = num_samples <= lanes and request.grace_period is None
    point_epochs: dict[str, int] = {}
    if idle:  # a stop would free a lane that no trial waits for: ASHA gets no rung, trials hold their lanes
        trials, left_out = _lay_out(budget, lanes, points, tpe, request, epochs, asha=False, tail_min=tail_min)
        if budget.seconds is not None and request.max_epochs is None:
            trials, point_epochs = _fill_lanes(budget, trials, points)
            notes += [f"documented point {key} runs {e} epochs, all that its own lane holds (the slowest trial "
                      f"sets the others' at {epochs})" for key, e in point_epochs.items()]
    if request.num_samples and len(trials) < request.num_samples:
        notes.append(f"{len(trials)} of the {request.num_samples} trials asked for are expected to fit; no trial "
                     "starts unless its whole schedule fits in what is left")
    grace, milestones = _asha(epochs, request, on=not idle)
    if not request.num_samples and milestones:
        # ASHA may stop more trials early than expected: the search goes on while trials fit (the start guard
        # decides), up to as many as fit if every one stopped at the first rung.
        num_samples = max(num_samples, len(_lay_out(budget, lanes, points, tpe, request, epochs, tail_min=tail_min,
                                                    first_rung_only=True)[0]))
    notes += [f"documented point {name} cannot run its documented epochs within the budget: left out"
              for name in left_out]
    return Plan(budget=budget.describe(), lanes=lanes, tpe_epochs=epochs, grace_period=grace, milestones=milestones,
                reduction_factor=request.reduction_factor, num_samples=num_samples, trials=trials,
                start_s=start_s, deadline_s=budget.seconds, left_out=left_out, notes=notes, tail_min_epochs=tail_min,
                tpe_cost=tpe, point_epochs=point_epochs)


def plan_training(budget_s: float, elapsed_s: float, cost: Cost) -> int:
    """Epochs of one training run (the `train` command) that fit in `budget_s` from its start."""
    usable = budget_s * (1 - SLACK) - elapsed_s - cost.first_epoch_extra_s
    epochs = math.floor(usable / cost.epoch_s) if usable > 0 else 0
    if epochs < 1:
        needed = (elapsed_s + cost.seconds(1)) / (1 - SLACK)
        raise UserError(f"the time budget of {budget_s / 60:g} min cannot hold one epoch: an epoch takes "
                        f"{cost.seconds(1) / 60:.1f} min on this machine, after {elapsed_s / 60:.1f} min of loading "
                        f"and measuring; give --time-budget {_minutes_up(needed)} or more")
    return epochs


def _asha(epochs: int, request: Request, *, on: bool = True) -> tuple[int, list[int]]:
    if not on:
        return epochs, []
    grace = request.grace_period or max(1, epochs // request.reduction_factor)
    return grace, asha_milestones(epochs, grace, request.reduction_factor)


def _lay_out(budget: Budget, lanes: int, points: list[Point], tpe: Cost, request: Request,
             epochs: int, *, asha: bool = True, tail_min: int | None = None,
             first_rung_only: bool = False) -> tuple[list[PlannedTrial], list[str]]:
    """The trials that fit at `epochs` per TPE trial, with their expected starts; the points left out. With
    `tail_min`, TPE trials of fewer epochs (at least tail_min) follow where a whole one no longer fits; with
    `first_rung_only`, every stoppable trial is taken to end at ASHA's first rung (the most trials that fit)."""
    limit = request.num_samples or MAX_TRIALS
    _, milestones = _asha(epochs, request, on=asha)
    tpe_expected = milestones[0] if first_rung_only and milestones else \
        expected_epochs(epochs, milestones, request.reduction_factor)
    available_s = _available_s(budget)
    available_epochs = (budget.epochs or 0.0) / budget.epoch_fraction
    lane_free = [0.0] * lanes
    trials, left_out = [], []

    def committed(start: float) -> float:
        # As the search's guard counts: what ended trials ran, and the whole schedule of those still running.
        return sum(t.expected_epochs if t.end_s <= start else t.epochs for t in trials)

    def fits(start: float, seconds: float, trial_epochs: float) -> bool:
        if budget.seconds is not None:
            return start + seconds <= available_s
        return committed(start) + trial_epochs <= available_epochs + 1e-9

    def epochs_that_fit(start: float) -> int:
        if budget.seconds is not None:
            return math.floor((available_s - start - tpe.first_epoch_extra_s) / tpe.epoch_s + 1e-9)
        return math.floor(available_epochs - committed(start) + 1e-9)

    jobs = [(p.family, p.name, p.epochs or epochs, p.epochs is None, p.cost) for p in points]
    jobs_done = 0
    while len(trials) < limit:
        if jobs_done < len(jobs):
            family, point, trial_epochs, stoppable, cost = jobs[jobs_done]
            jobs_done += 1
        else:
            family, point, trial_epochs, stoppable, cost = TPE, TPE, epochs, True, tpe
        start = lane_free[0]
        full = cost.seconds(trial_epochs)
        runs = tpe_expected if stoppable else trial_epochs
        if not fits(start, full, trial_epochs):
            if point != TPE:
                left_out.append(f"{family}/{point}")
                continue
            trial_epochs = min(epochs - 1, epochs_that_fit(start))
            if tail_min is None or trial_epochs < tail_min:
                break
            full = cost.seconds(trial_epochs)
            rungs = [m for m in milestones if m < trial_epochs]
            runs = rungs[0] if first_rung_only and rungs else \
                expected_epochs(trial_epochs, rungs, request.reduction_factor)
        trials.append(PlannedTrial(family, point, trial_epochs, runs, start, full, cost.seconds(runs)))
        heapq.heapreplace(lane_free, start + cost.seconds(runs))
    return trials, left_out


def _available_s(budget: Budget) -> float:
    """Seconds of a time budget the trials may fill, from the first trial's start."""
    return (budget.seconds or 0.0) * (1 - SLACK) - budget.elapsed_s - START_UP_S - WIND_DOWN_S


def _fill_lanes(budget: Budget, trials: list[PlannedTrial],
                points: list[Point]) -> tuple[list[PlannedTrial], dict[str, int]]:
    """Every trial on its own lane (no ASHA rung): each documented point that names no epochs runs the most its lane
    holds. Returns the trials and the points given more epochs than they had."""
    costs = {trial_key(p.family, p.name): p.cost for p in points if p.epochs is None}
    available_s = _available_s(budget)
    filled, point_epochs = [], {}
    for t in trials:
        cost = costs.get(t.key)
        fit = 0 if cost is None else math.floor((available_s - t.start_s - cost.first_epoch_extra_s) / cost.epoch_s
                                                + 1e-9)
        if fit > t.epochs:
            t = dataclasses.replace(t, epochs=fit, expected_epochs=fit, full_s=cost.seconds(fit),
                                    expected_s=cost.seconds(fit))
            point_epochs[t.key] = fit
        filled.append(t)
    return filled, point_epochs


def _default_epochs(lay_out, points: list[Point], lanes: int, eta: int) -> int:
    """Neither trials nor epochs given: the most epochs (up to DEFAULT_TPE_EPOCHS) with which the budget holds a
    search, i.e. eta trials per lane (ASHA's first rung has trials to compare) and one beyond the points; failing
    that, the most with which one trial of that size fits."""
    wanted = max(len(points) + 1, eta * lanes)
    own = {(p.family, p.name) for p in points if p.epochs is not None}
    return (_most_epochs(lambda e: len(lay_out(e)[0]) >= wanted, DEFAULT_TPE_EPOCHS)
            or _most_epochs(lambda e: any((t.family, t.point) not in own for t in lay_out(e)[0]), DEFAULT_TPE_EPOCHS)
            or DEFAULT_TPE_EPOCHS)


def _most_epochs(ok, ceiling: int) -> int | None:
    """The largest e in [1, ceiling] with ok(e), for ok true up to some e and false above it; None if ok(1) fails."""
    if ceiling < 1 or not ok(1):
        return None
    low, high = 1, ceiling
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _epochs_ceiling(budget: Budget, points: list[Point], tpe: Cost, start_s: float) -> int:
    if budget.seconds is None:
        return max(1, math.floor(budget.epochs / budget.epoch_fraction))
    cheapest = min([tpe.epoch_s, *(p.cost.epoch_s for p in points)])
    return max(1, math.floor(max(0.0, budget.seconds - start_s) / cheapest))


def _too_small(budget: Budget, points: list[Point], tpe: Cost, start_s: float, tpe_epochs: int) -> str:
    """Why nothing fits, with the budget that would hold the smallest trial."""
    sizes = [(tpe.seconds(tpe_epochs), tpe_epochs, f"a TPE trial of {tpe_epochs} epoch(s)")]
    sizes += [(p.cost.seconds(p.epochs or tpe_epochs), p.epochs or tpe_epochs,
               f"documented point {p.family}/{p.name} ({p.epochs or tpe_epochs} epoch(s))") for p in points]
    seconds, epochs, what = min(sizes)
    if budget.seconds is None:
        return (f"the budget of {budget.describe()} cannot hold one trial: the smallest, {what}, needs "
                f"{epochs * budget.epoch_fraction:g}; give --epochs-budget {epochs * budget.epoch_fraction:g} or more")
    needed = (start_s + seconds + WIND_DOWN_S) / (1 - SLACK)
    return (f"the time budget of {budget.describe()} cannot hold one trial: the smallest, {what}, needs "
            f"{seconds / 60:.1f} min on this machine, after {budget.elapsed_s / 60:.1f} min of loading and measuring "
            f"and {START_UP_S:g} s to start the search; give --time-budget {_minutes_up(needed)} or more")


def _minutes_up(seconds: float) -> str:
    return f"{math.ceil(seconds / 6) / 10:g}"  # minutes, rounded up to a tenth
