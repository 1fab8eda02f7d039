"""A run's budget, planned: measure this machine (speed.py), plan (plan.py), apply the plan to the search or the
training run, and compare it with what happened. No Ray.

Layouts: on CPU, every way to split the search's CPUs into trials at once x threads each (1 x all, 2 x half,
..., all x 1) is measured on the first documented point's network, and the one whose plan trains the most
epochs wins; the other networks are then measured on that layout only. `--cpus-per-trial` fixes the layout,
and on GPUs the GPU share does. The budget counts from the command's start: loading the data and measuring
are part of it.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_search.data.types import FERData
from fer_search.errors import UserError
from fer_search.search import plan as planner
from fer_search.search.speed import CACHE_FILE, Layout, Speed, SpeedCache, describe_network, machine_key, speeds
from fer_search.search.storage import is_uri
from search_spaces import SearchSpace

PLAN_FILE = "plan.json"  # beside a `train --time-budget` run's model


@dataclass
class SearchBudget:
    """What `run` was asked for."""

    minutes: float | None  # --time-budget
    epochs: float | None  # --epochs-budget
    started: float  # time.time() at the command's start
    request: planner.Request
    layout_given: bool  # --cpus-per-trial (or a GPU share) fixes the layout
    skip_points: bool = False  # --skip-points, or --continue-study (the study has run them)


def candidate_layouts(settings, spaces: list[SearchSpace], *, cpus_found: int, gpus_found: int,
                      layout_given: bool) -> dict[Layout, int]:
    """The layouts worth measuring, each with its lanes (trials at once in the whole search)."""
    from fer_search.search.settings import plan_resources

    resources = plan_resources(settings, spaces, cpus_found=cpus_found, gpus_found=gpus_found)
    threads = max(1, int(resources.cpus_per_trial))
    if resources.gpus:  # the GPU share sets the layout; its trials are measured sharing one GPU
        per_gpu = max(1, resources.concurrency // resources.gpus)
        return {Layout(per_gpu, threads, "cuda"): resources.concurrency}
    if layout_given:
        return {Layout(resources.concurrency, threads): resources.concurrency}
    cpus = resources.cpus
    splits = sorted({cpus} | {2 ** i for i in range(cpus.bit_length()) if 2 ** i <= cpus})
    return {Layout(trials, cpus // trials): trials for trials in splits}


def plan_from_options(args, spaces: list[SearchSpace], data: FERData, settings, started: float):
    """`run --time-budget / --epochs-budget`: (the plan's record, the spaces it keeps), after measuring this
    machine; None where the budget is only a deadline (--smoke, a cluster)."""
    from fer_search.search.settings import local_cpu_count, local_gpu_count

    if not (args.time_budget or args.epochs_budget) or args.smoke:
        return None
    if args.address is not None:
        if args.epochs_budget:
            raise UserError("--epochs-budget plans from this machine's measured speed; on a cluster (--address) "
                            "give --time-budget, --num-samples and --max-epochs")
        print("note: on a cluster the time budget is a deadline, not a plan (this machine's speed says little of "
              "the nodes')", flush=True)
        return None
    wanted = SearchBudget(
        minutes=args.time_budget, epochs=args.epochs_budget, started=started,
        request=planner.Request(args.num_samples, args.max_epochs, args.grace_period, args.reduction_factor),
        layout_given=args.cpus_per_trial is not None, skip_points=args.skip_points or bool(args.continue_study))
    lanes = candidate_layouts(settings, spaces, cpus_found=local_cpu_count(), gpus_found=local_gpu_count(),
                              layout_given=wanted.layout_given)
    cache = None if is_uri(settings.storage) else Path(settings.storage, settings.name)
    plan, kept = plan_run(spaces, data, settings, wanted, lanes, cache)
    return plan_record(plan, started), kept


def report_search(storage: str, name: str, trials: list) -> None:
    """A planned search's plan vs what ran, printed and kept in experiment.json."""
    from fer_search.search.record import load_record

    record = load_record(f"{storage}/{name}") if not is_uri(storage) else None
    if record is None or not record.plan:
        return
    actual = compare(record.plan, trials, time.time())
    print("\n" + "\n".join(actual["lines"]))
    record.plan["actual"] = actual
    record.save(f"{storage}/{name}")


def plan_run(spaces: list[SearchSpace], data: FERData, settings, budget: SearchBudget, lanes: dict[Layout, int],
             cache_dir: Path | None) -> tuple[planner.Plan, list[SearchSpace]]:
    """Measure, plan and apply: `settings` get the plan's trials, epochs, ASHA grace, CPU share and start guard;
    returns the plan and the spaces without the documented points that cannot fit."""
    if budget.minutes and budget.minutes * 60 * (1 - planner.SLACK) <= time.time() - budget.started + planner.START_UP_S:
        raise UserError(f"the time budget of {budget.minutes:g} min cannot hold one trial: loading the data and starting "
                        f"the search take {time.time() - budget.started + planner.START_UP_S:.0f} s before the first "
                        "epoch; give a longer --time-budget")
    cache = SpeedCache(cache_dir / CACHE_FILE if cache_dir is not None else None)
    configs = [{**space.point_config(name), **settings.overrides()} for space in spaces for name in space.points]
    families = [space.family for space in spaces for _ in space.points]
    names = [name for space in spaces for name in space.points]
    # Every layout on the first network, then each one's plan with that speed for every network: the plan that
    # trains the most epochs wins (on a tie, fewer trials at once with more threads each).
    first = {layout: speeds(configs[:1], layout, cache)[0] for layout in lanes}
    candidates, refusal = [], None
    for layout, speed in first.items():
        try:
            candidates.append((_plan(budget, data, configs, families, names, [speed] * len(configs), lanes[layout],
                                     settings, spaces), layout))
        except UserError as exc:  # this layout holds no trial; another may
            refusal = refusal or exc
    if not candidates:
        raise refusal
    chosen = max(candidates, key=lambda c: (round(c[0].total_epochs, 6), -c[1].trials))[1]
    measured = speeds(configs, chosen, cache)
    plan = _plan(budget, data, configs, families, names, measured, lanes[chosen], settings, spaces)
    plan.layout = chosen.describe()
    if len(candidates) > 1:
        plan.notes.append("chosen over " + "; ".join(f"{layout.describe()}: {p.total_epochs:.1f} epochs"
                                                    for p, layout in candidates if layout != chosen)
                          + f" (this layout: {plan.total_epochs:.1f} epochs in all)")
    _apply(plan, chosen, settings, budget, data)
    kept = [dataclasses.replace(space, points={} if budget.skip_points else
                                {n: p for n, p in space.points.items() if f"{space.family}/{n}" not in plan.left_out})
            for space in spaces]
    print(describe_plan(plan, configs, measured, data, budget.started), flush=True)
    return plan, kept


def _plan(budget: SearchBudget, data: FERData, configs, families, names, measured: list[Speed], lanes: int,
          settings, spaces) -> planner.Plan:
    costs = [planner.Cost(speed.epoch_seconds(*epoch_images(config, data)), speed.warmup_s)
             for config, speed in zip(configs, measured)]
    by_family: dict[str, planner.Cost] = {}
    for family, cost in zip(families, costs):  # a family's TPE trials priced as its slowest point's network
        if family not in by_family or cost.epoch_s > by_family[family].epoch_s:
            by_family[family] = cost
    own_epochs = {(space.family, name): space.points[name].get("epochs") if settings.point_budgets else None
                  for space in spaces for name in space.points}
    points = [] if budget.skip_points else [
        planner.Point(family, name, own_epochs[(family, name)], cost)
        for family, name, cost in zip(families, names, costs)]
    limits = planner.Budget(seconds=budget.minutes * 60 if budget.minutes else None, epochs=budget.epochs,
                            elapsed_s=time.time() - budget.started, epoch_fraction=epoch_fraction(settings, data))
    tpe = max(by_family.values(), key=lambda cost: cost.epoch_s)
    return planner.plan_search(limits, lanes, points, tpe, budget.request)


def _apply(plan: planner.Plan, layout: Layout, settings, budget: SearchBudget, data: FERData) -> None:
    settings.num_samples = plan.num_samples
    settings.max_epochs = plan.tpe_epochs
    settings.grace_period = plan.grace_period
    settings.point_epochs = dict(plan.point_epochs)
    if layout.device == "cpu" and not budget.layout_given:
        settings.cpus_per_trial = layout.threads
    # In trial epochs, as the search counts them.
    settings.budget_guard = {**plan.guard(), "lanes": plan.lanes, "epochs_budget": budget.epochs / epoch_fraction(settings, data)
                             if budget.epochs else None}


def epoch_fraction(settings, data: FERData) -> float:
    """One trial epoch as a share of the full training set (below 1 with --max-train-images)."""
    cap = settings.max_train_images
    return min(cap, len(data.train)) / len(data.train) if cap else 1.0


def epoch_images(config: dict[str, Any], data: FERData) -> tuple[int, int]:
    """(training images, predicted images) of one epoch of `config` on `data`, as the trainer counts them."""
    batch = int(config.get("batch_size", 64))
    overfit = int(config.get("overfit_images") or 0)
    available = overfit or len(data.train)
    cap = int(config.get("max_train_images") or 0)
    epoch_size = min(cap, available) if cap > 0 else available
    test = len(data.test) if data.test is not None else 0
    return max(1, epoch_size // batch) * batch, (overfit or len(data.val)) + test


def describe_plan(plan: planner.Plan, configs: list[dict], measured: list[Speed], data: FERData,
                  started: float) -> str:
    """The plan as `run` prints it before the first trial."""
    lines = [f"plan: budget {plan.budget} from the start ({_clock(started)}); {plan.layout}; measured on "
             f"{describe_machine()}"]
    seen = set()
    for config, speed in zip(configs, measured):
        name = describe_network(config)
        if name in seen:
            continue
        seen.add(name)
        trained, predicted = epoch_images(config, data)
        lines.append(f"  measured {name}: {speed.train_images_per_s:,.0f} images/s training, "
                     f"{speed.eval_images_per_s:,.0f} predicting: {speed.epoch_seconds(trained, predicted):.1f} s an "
                     f"epoch ({trained:,} trained, {predicted:,} predicted)")
    lines.append("  trials: " + describe_trials(plan))
    lines.append(f"  expected end: {_clock(started + plan.expected_end_s)} ({plan.expected_end_s / 60:.1f} min after "
                 "the start)" + (f"; the budget ends {_clock(started + plan.deadline_s)}" if plan.deadline_s else ""))
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines)


def describe_trials(plan: planner.Plan) -> str:
    points = [t for t in plan.trials if t.point != planner.TPE]
    tails = plan.tail_epochs
    tpe = len(plan.trials) - len(points) - len(tails)
    text = ", ".join(f"{t.family}/{t.point} {t.epochs} epochs" for t in points[:8])
    text = (f"{len(points)} documented point(s) ({text}{', ...' if len(points) > 8 else ''})" if points
            else "no documented point")
    text += f" + {tpe} TPE trial(s) of {plan.tpe_epochs} epochs" if tpe else ", no TPE trial"
    if tails:
        text += (f" + {len(tails)} shorter at the lanes' ends ({', '.join(map(str, tails))} epochs: what is left "
                 "of the budget)")
    expected = len(plan.trials)
    text += f"; {plan.num_samples} trials in the search" if plan.num_samples <= expected else \
        f"; {expected} trials expected, up to {plan.num_samples} if ASHA stops more of them early"
    if plan.milestones:
        return text + (f"; ASHA compares trials at epochs {', '.join(map(str, plan.milestones))} and keeps 1 in "
                       f"{plan.reduction_factor}")
    return text + "; ASHA stops none (no trial waits for a lane)"


def describe_machine() -> str:
    """"AMD EPYC, PyTorch on AVX512": what the speeds were measured on."""
    machine = machine_key()
    restricted = " ".join(f"{k}={v}" for k, v in machine["isa_env"].items())
    return (f"{machine['cpu']}, PyTorch on {machine['cpu_capability']}" + (f" ({restricted})" if restricted else "")
            + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))


def plan_record(plan: planner.Plan, started: float) -> dict[str, Any]:
    """What experiment.json keeps of the plan (a plan of many TPE trials is summed up, not listed)."""
    points = [dataclasses.asdict(t) for t in plan.trials if t.point != planner.TPE]
    return {"budget": plan.budget, "layout": plan.layout, "machine": describe_machine(), "lanes": plan.lanes, "tpe_epochs": plan.tpe_epochs,
            "grace_period": plan.grace_period, "milestones": plan.milestones, "num_samples": plan.num_samples,
            "points": points, "tpe_trials": len(plan.trials) - len(points) - len(plan.tail_epochs),
            "tail_epochs": plan.tail_epochs, "point_epochs": plan.point_epochs, "left_out": plan.left_out,
            "notes": plan.notes, "started": started, "expected_end": started + plan.expected_end_s,
            "planned_trials": len(plan.trials)}


def compare(recorded: dict[str, Any], trials: list, ended: float) -> dict[str, Any]:
    """Plan vs actual, for the outcome and experiment.json: {"lines": what to print, and the figures}."""
    from collections import Counter

    counts = Counter(t.status for t in trials)
    short = [f"{t.name} {t.epochs} of {t.config.get('epochs')}" for t in trials
             if t.epochs < int(t.config.get("epochs") or 0) and t.finished_by != "early_stopping"]
    planned = [f"{p['family']}/{p['point']} {p['epochs']}" for p in recorded["points"][:8]]
    if recorded["tpe_trials"]:
        planned.append(f"{recorded['tpe_trials']} TPE x {recorded['tpe_epochs']}")
    if recorded.get("tail_epochs"):
        planned.append(f"{len(recorded['tail_epochs'])} shorter ({', '.join(map(str, recorded['tail_epochs']))})")
    ran = ", ".join(str(t.epochs) for t in trials[:12]) + (", ..." if len(trials) > 12 else "")
    started = recorded["started"]
    lines = [f"plan vs actual: {recorded['planned_trials']} trial(s) planned, {len(trials)} started ("
             + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")",
             f"  epochs: planned {', '.join(planned)}; ran {ran or 'none'}"
             + (f"; {len(short)} short of their schedule (ASHA or the budget): {', '.join(short[:8])}"
                + (", ..." if len(short) > 8 else "") if short else "; every trial finished its schedule"),
             f"  end: planned {_clock(recorded['expected_end'])} ({(recorded['expected_end'] - started) / 60:.1f} min), "
             f"actual {_clock(ended)} ({(ended - started) / 60:.1f} min)"]
    return {"lines": lines, "trials_started": len(trials), "statuses": dict(counts),
            "epochs": [t.epochs for t in trials], "short_of_schedule": short, "ended": ended}


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def plan_train(config, data: FERData, minutes: float, started: float, device: str, out: Path):
    """`train --time-budget`: the epochs that fit, measured with every thread of this process; returns the config
    with them. Writes OUT/plan.json (and the speed cache beside it)."""
    import torch

    from fer_search.training.trainer import resolve_device

    flat = config.to_flat()
    layout = Layout(trials=1, threads=torch.get_num_threads(), device=resolve_device(device).type)
    speed = speeds([flat], layout, SpeedCache(out / CACHE_FILE))[0]
    trained, predicted = epoch_images(flat, data)
    cost = planner.Cost(speed.epoch_seconds(trained, predicted), speed.warmup_s)
    elapsed = time.time() - started
    epochs = planner.plan_training(minutes * 60, elapsed, cost)
    end = started + elapsed + cost.seconds(epochs)
    record = {"budget": f"{minutes:g} min", "layout": layout.describe(), "machine": describe_machine(),
              "network": describe_network(flat),
              "train_images_per_s": speed.train_images_per_s, "eval_images_per_s": speed.eval_images_per_s,
              "epoch_s": cost.epoch_s, "epochs": epochs, "started": started, "expected_end": end}
    (out / PLAN_FILE).write_text(json.dumps(record, indent=2))
    print(f"plan: budget {minutes:g} min from the start ({_clock(started)}); {layout.describe()}; measured on "
          f"{describe_machine()}\n"
          f"  measured {describe_network(flat)}: {speed.train_images_per_s:,.0f} images/s training, "
          f"{speed.eval_images_per_s:,.0f} predicting: {cost.epoch_s:.1f} s an epoch ({trained:,} trained, "
          f"{predicted:,} predicted)\n  {epochs} epochs; expected end {_clock(end)} ({(end - started) / 60:.1f} min "
          "after the start)", flush=True)
    return dataclasses.replace(config, epochs=epochs)


def report_train(out: Path, epochs_ran: int) -> None:
    """`train --time-budget`'s plan vs actual, printed and added to OUT/plan.json."""
    path = out / PLAN_FILE
    record = json.loads(path.read_text())
    ended = time.time()
    record.update(actual_end=ended, epochs_ran=epochs_ran)
    path.write_text(json.dumps(record, indent=2))
    print(f"plan vs actual: {record['epochs']} epochs planned, {epochs_ran} ran; end planned "
          f"{_clock(record['expected_end'])} ({(record['expected_end'] - record['started']) / 60:.1f} min), actual "
          f"{_clock(ended)} ({(ended - record['started']) / 60:.1f} min)")
