"""Budgets planned from measured speed (issue 15): the planner's arithmetic, the speed measurement and its
cache, the layout choice, the start guard of a running search, and `run`/`train` with a budget."""
from __future__ import annotations

import json
import time
import types
from pathlib import Path

import pytest

from fer_search.errors import UserError
from fer_search.search import plan as planner
from fer_search.search.plan import Budget, Cost, Point, Request, plan_search

SPACES = Path(__file__).parent / "spaces"
TINY = {"arch": "simple_cnn", "widths": (8, 16), "kernel_size": 3, "fc_width": 32, "batch_size": 32,
        "schedule": "onecycle"}


def _available(budget: Budget) -> float:
    return budget.seconds * (1 - planner.SLACK) - budget.elapsed_s - planner.START_UP_S - planner.WIND_DOWN_S


def _points(*epochs, cost=Cost(10.0, 1.0), family="deeper_cnn"):
    return [Point(family, f"p{i}", e, cost) for i, e in enumerate(epochs)]


def test_asha_milestones_and_the_epochs_it_is_expected_to_leave():
    assert planner.asha_milestones(20, 6, 3) == [6, 18]
    assert planner.asha_milestones(20, 20, 3) == []
    # All run 6 epochs, a third 12 more, a ninth the last 2.
    assert planner.expected_epochs(20, [6, 18], 3) == pytest.approx(6 + 12 / 3 + 2 / 9)
    assert planner.expected_epochs(20, [], 3) == 20


def test_given_trials_fill_the_budget_and_every_schedule_ends_inside_it():
    budget = Budget(seconds=600, elapsed_s=10)
    plan = plan_search(budget, 2, _points(None, None), Cost(10.0, 1.0), Request(num_samples=2))
    assert plan.tpe_epochs == int((_available(budget) - 1.0) // 10.0)  # the most that fit
    assert [t.epochs for t in plan.trials] == [plan.tpe_epochs] * 2 and [t.start_s for t in plan.trials] == [0, 0]
    assert all(t.start_s + t.full_s <= _available(budget) for t in plan.trials)
    # Two trials on two lanes: a stop would free a lane nothing waits for, so ASHA has no rung.
    assert (plan.grace_period, plan.milestones, plan.num_samples) == (plan.tpe_epochs, [], 2)
    assert plan.expected_end_s <= budget.seconds


def test_more_trials_than_lanes_get_asha_rungs_and_every_start_leaves_room_for_the_whole_schedule():
    budget = Budget(seconds=3600, elapsed_s=20)
    plan = plan_search(budget, 2, _points(None), Cost(10.0, 2.0), Request())
    assert plan.tpe_epochs == planner.DEFAULT_TPE_EPOCHS and len(plan.trials) >= 6
    assert plan.grace_period == 20 // 3 and plan.milestones == [6, 18]
    assert all(t.start_s + t.full_s <= _available(budget) for t in plan.trials)  # schedules anneal to their end
    whole = [t for t in plan.trials if t.point == planner.TPE and t.epochs == 20]
    assert whole and all(t.expected_epochs == planner.expected_epochs(20, [6, 18], 3) for t in whole)


def test_the_lanes_last_trials_get_the_epochs_left_so_that_no_lane_idles_to_the_deadline():
    """Where the plan decides the trials and their epochs, a TPE trial whose whole schedule no longer fits gets the
    epochs that do (at least half of E); it still ends inside the budget. Trials or epochs the user fixed get none."""
    budget = Budget(seconds=1200, elapsed_s=15)
    cost = Cost(23.3, 3.0)
    plan = plan_search(budget, 2, _points(None, None, cost=cost), cost, Request())
    whole_only = planner._lay_out(budget, 2, _points(None, None, cost=cost), cost, Request(), plan.tpe_epochs)[0]
    tails = plan.tail_epochs
    assert tails and all(plan.tpe_epochs / 2 <= e < plan.tpe_epochs for e in tails)
    assert len(plan.trials) == len(whole_only) + len(tails)
    # ASHA may stop more trials early than expected: the search may start up to as many as fit if every one
    # stopped at the first rung (the start guard ends it when none fits).
    most = planner._lay_out(budget, 2, _points(None, None, cost=cost), cost, Request(), plan.tpe_epochs,
                            tail_min=plan.tail_min_epochs, first_rung_only=True)[0]
    assert plan.num_samples == len(most) > len(plan.trials)
    assert all(t.start_s + t.full_s <= _available(budget) for t in plan.trials)  # every schedule anneals
    end_without = plan.start_s + max(t.end_s for t in whole_only)
    assert end_without < plan.expected_end_s <= budget.seconds  # the lanes work on towards the deadline
    assert plan.guard()["tail"] == {"min_epochs": -(-plan.tpe_epochs // 2), "epoch_s": 23.3, "first_epoch_extra_s": 3.0}
    fixed = plan_search(budget, 2, _points(None, None, cost=cost), cost, Request(num_samples=6))
    assert not fixed.tail_epochs and fixed.guard()["tail"] is None and fixed.num_samples == 6
    assert not plan_search(budget, 2, [], cost, Request(max_epochs=plan.tpe_epochs)).tail_epochs


def test_a_point_on_a_faster_network_fills_its_own_lane_where_every_trial_has_one():
    """Two points, two lanes, two trials (cpu_search.sh): E is what the slower network fits; the faster point runs
    the more epochs its lane holds, still ending inside the budget. Epochs the user fixed, an epochs budget, or more
    trials than lanes (ASHA compares trials at the same epochs) leave every point at E."""
    budget = Budget(seconds=1200, elapsed_s=20)
    slow, fast = Cost(60.0, 2.0), Cost(50.0, 2.0)
    points = [Point("deeper_cnn", "double_last", None, slow), Point("deeper_cnn", "five_blocks", None, fast)]
    plan = plan_search(budget, 2, points, slow, Request(num_samples=2))
    by_point = {t.point: t for t in plan.trials}
    assert by_point["double_last"].epochs == plan.tpe_epochs == int((_available(budget) - 2.0) // 60.0)
    assert by_point["five_blocks"].epochs == int((_available(budget) - 2.0) // 50.0) > plan.tpe_epochs
    assert plan.point_epochs == {"deeper_cnn/five_blocks": by_point["five_blocks"].epochs}
    assert all(t.start_s + t.full_s <= _available(budget) for t in plan.trials) and plan.expected_end_s <= 1200
    assert plan.guard()["epochs"]["deeper_cnn/five_blocks"] == by_point["five_blocks"].epochs
    assert any("deeper_cnn/five_blocks runs" in note for note in plan.notes)
    for unchanged in (plan_search(budget, 2, points, slow, Request(num_samples=2, max_epochs=10)),
                      plan_search(Budget(epochs=40), 2, points, slow, Request(num_samples=2)),
                      plan_search(budget, 2, points, slow, Request(num_samples=4))):
        assert not unchanged.point_epochs
        assert all(t.epochs <= unchanged.tpe_epochs for t in unchanged.trials)


def test_the_sampler_gives_a_point_its_planned_epochs_and_asha_lets_it_finish():
    from fer_search.search.sampler import SpaceSampler
    from search_spaces import load_space

    space = load_space(str(SPACES / "tiny_simple_cnn.yaml"))
    for smoke in (False, True):
        sampler = SpaceSampler([space], {"epochs": 5, "seed": 0}, point_budgets=not smoke,
                               point_epochs={"simple_cnn/good": 8})
        trial = types.SimpleNamespace(user_attrs={"point": "good"}, number=0,
                                      suggest_float=lambda name, low, high, log=False: low,
                                      suggest_categorical=lambda name, choices: choices[0])
        assert sampler(trial)["epochs"] == 8
        trial.user_attrs = {"point": "collapse"}
        assert sampler(trial)["epochs"] == 5
        assert ("simple_cnn", "good") in sampler.scheduled_points & sampler.budgeted_points


def test_a_short_budget_gets_shorter_trials_so_that_the_search_still_searches():
    plan = plan_search(Budget(seconds=450, elapsed_s=20), 2, _points(None, None), Cost(10.0, 0.0), Request())
    assert plan.tpe_epochs < planner.DEFAULT_TPE_EPOCHS
    assert len(plan.trials) >= 3 * 2  # eta trials per lane: ASHA's first rung compares something


def test_documented_points_keep_their_epochs_and_one_that_cannot_fit_is_left_out_with_a_note():
    points = [Point("resnet", "long", 500, Cost(10.0)), Point("resnet", "short", 30, Cost(10.0))]
    plan = plan_search(Budget(seconds=1200), 2, points, Cost(10.0), Request())
    assert plan.left_out == ["resnet/long"]
    assert any("resnet/long cannot run its documented epochs" in note for note in plan.notes)
    short = next(t for t in plan.trials if t.point == "short")
    assert (short.epochs, short.expected_epochs) == (30, 30)  # its own epochs, never cut by ASHA


def test_fixed_epochs_take_as_many_trials_as_fit_and_say_when_fewer_than_asked():
    plan = plan_search(Budget(seconds=600), 1, _points(None), Cost(10.0), Request(max_epochs=10))
    assert plan.tpe_epochs == 10 and all(t.epochs == 10 for t in plan.trials)
    asked = plan_search(Budget(seconds=600), 1, _points(None), Cost(10.0), Request(num_samples=50, max_epochs=10))
    assert asked.num_samples == 50 and len(asked.trials) < 50
    assert any(f"{len(asked.trials)} of the 50 trials" in note for note in asked.notes)


def test_an_epochs_budget_is_the_same_on_every_machine():
    slow, fast = (plan_search(Budget(epochs=40), 2, _points(None, None), Cost(s), Request(num_samples=2))
                  for s in (100.0, 1.0))
    assert slow.tpe_epochs == fast.tpe_epochs == 20
    capped = plan_search(Budget(epochs=40, epoch_fraction=0.5), 2, _points(None, None), Cost(1.0),
                         Request(num_samples=2))
    assert capped.tpe_epochs == 40  # a trial epoch of half the training set counts half


def test_a_budget_that_holds_no_trial_says_what_would():
    with pytest.raises(UserError, match="cannot hold one trial") as refused:
        plan_search(Budget(seconds=60, elapsed_s=5), 2, _points(None, cost=Cost(50.0, 5.0)), Cost(50.0, 5.0), Request())
    needed = float(str(refused.value).split("give --time-budget ")[1].split()[0])
    plan = plan_search(Budget(seconds=needed * 60, elapsed_s=5), 2, _points(None, cost=Cost(50.0, 5.0)),
                       Cost(50.0, 5.0), Request())
    assert plan.trials  # the budget it names holds the smallest trial


def test_one_training_run_plans_the_epochs_that_fit():
    assert planner.plan_training(600, 20, Cost(25.0, 5.0)) == int((600 * (1 - planner.SLACK) - 20 - 5) // 25)
    with pytest.raises(UserError, match="cannot hold one epoch.*give --time-budget"):
        planner.plan_training(30, 20, Cost(25.0, 5.0))


# --- speed: the real trainer step, cached per machine, network and layout ---------------------------------------

def test_network_key_tells_networks_and_batches_apart_but_not_rates():
    from fer_search.search.speed import network_key

    base = network_key(TINY)
    assert network_key({**TINY, "dropout": 0.4, "lr": 0.1}) == base
    assert network_key({**TINY, "batch_size": 64}) != base and network_key({**TINY, "widths": (8, 32)}) != base
    assert network_key({**TINY, "precision": "fp32"}) != base


def test_speed_is_measured_with_the_trainer_and_cached_per_machine_and_layout(tmp_path, monkeypatch):
    from fer_search.search import speed

    layout = speed.Layout(trials=1, threads=1)
    cache = speed.SpeedCache(tmp_path / "speed.json")
    measured = speed.speeds([TINY, {**TINY, "dropout": 0.3}], layout, cache, say=lambda line: None)
    assert measured[0] == measured[1]  # one network, measured once
    assert measured[0].train_images_per_s > 0 and measured[0].eval_images_per_s > 0 and measured[0].checkpoint_s > 0
    assert len(json.loads((tmp_path / "speed.json").read_text())["entries"]) == 1
    calls = []
    monkeypatch.setattr(speed, "measure", lambda configs, layout: calls.append(configs) or [measured[0]] * len(configs))
    assert speed.speeds([TINY], layout, speed.SpeedCache(tmp_path / "speed.json"))[0] == measured[0]
    assert calls == []  # from the file
    speed.speeds([TINY], speed.Layout(trials=2, threads=1), cache, say=lambda line: None)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # another machine, as far as speed goes
    speed.speeds([TINY], layout, speed.SpeedCache(tmp_path / "speed.json"), say=lambda line: None)
    assert len(calls) == 2


def test_a_measurement_survives_configurations_a_trial_would_fail_or_diverge_on():
    from fer_search.search.speed import Layout, measure

    broken = {**TINY, "pretrained": "/nonexistent/weights.pt", "optimizer": "sgd", "lr": 1e6}
    assert measure([broken], Layout(1, 1))[0].train_images_per_s > 0


@pytest.mark.slow
def test_trials_at_once_are_measured_together_in_their_own_processes():
    from fer_search.search.speed import Layout, measure

    together = measure([TINY, {**TINY, "batch_size": 64}], Layout(trials=2, threads=1))
    assert len(together) == 2 and all(s.train_images_per_s > 0 for s in together)


def test_the_layout_that_trains_the_most_epochs_is_chosen(tmp_path):
    from fer_search.data import make_synthetic
    from fer_search.search import budget
    from fer_search.search.settings import SearchSettings
    from fer_search.search.speed import Layout, Speed, SpeedCache
    from search_spaces import load_space

    space = load_space(str(SPACES / "tiny_simple_cnn.yaml"))
    data = make_synthetic(n_train=600, n_test=100, seed=0)
    one, two = Layout(1, 2), Layout(2, 1)
    for layout, images_per_s in ((one, 1000.0), (two, 600.0)):  # two one-thread trials: 1,200 images/s in all
        cache = SpeedCache(tmp_path / "speed.json")
        for name in space.points:
            cache.store({**space.point_config(name)}, layout, Speed(images_per_s, 5000.0, 0.01, 0.1))
    settings = SearchSettings(storage=str(tmp_path), name="x")
    wanted = budget.SearchBudget(minutes=5, epochs=None, started=time.time(), request=Request(num_samples=2),
                                 layout_given=False)
    plan, kept = budget.plan_run([space], data, settings, wanted, {one: 1, two: 2}, tmp_path)
    assert plan.lanes == 2 and settings.cpus_per_trial == 1 and settings.num_samples == 2
    assert settings.max_epochs == plan.tpe_epochs and settings.budget_guard["lanes"] == 2
    assert "chosen over 1 trial at once, 2 threads" in " ".join(plan.notes)
    assert list(kept[0].points) == list(space.points)


# --- the guard: a running search starts a trial only where its schedule fits ----------------------------------

def test_the_guard_starts_a_trial_only_where_its_whole_schedule_fits():
    from fer_search.search.guard import StartGuard

    plan = {"seconds": {"tpe": 100.0}, "epochs": {"tpe": 10.0}, "lanes": 1, "epochs_budget": None}
    guard, soon = StartGuard(plan), time.time() + 50
    assert guard.claim("a", "tpe", soon)  # the plan's first wave starts whatever the start-up took
    assert not guard.claim("b", "tpe", soon)  # 100 s more would end past the deadline
    assert guard.claim("c", "tpe", time.time() + 500)
    guard = StartGuard({**plan, "epochs_budget": 25.0})
    assert guard.claim("a", "tpe", None) and guard.claim("b", "tpe", None)
    assert not guard.claim("c", "tpe", None) and guard.may_make_room()  # 20 committed; 10 more > 25
    for _ in range(3):
        guard.spend_epoch("a")
    guard.release("a")  # ASHA stopped it after 3 epochs: the other 7 come free
    assert guard.claim("c", "tpe", None) and not guard.spent()


def test_the_guard_gives_a_lanes_last_tpe_trial_the_epochs_left_and_follows_the_epochs_real_time():
    from fer_search.search.guard import StartGuard

    plan = {"seconds": {"tpe": 101.0, "deeper_cnn/p": 101.0}, "epochs": {"tpe": 10.0, "deeper_cnn/p": 10.0},
            "lanes": 0, "epochs_budget": None, "tail": {"min_epochs": 5, "epoch_s": 10.0, "first_epoch_extra_s": 1.0}}
    guard = StartGuard(plan)
    assert guard.claim("whole", "tpe", time.time() + 500) == 10
    assert guard.claim("tail", "tpe", time.time() + 71.5) == 7  # 70 s of 10-s epochs after the first epoch's extra
    assert guard.claim("point", "deeper_cnn/p", time.time() + 71.5) is None  # a documented point is never cut short
    assert guard.claim("short", "tpe", time.time() + 41.5) is None  # 4 epochs: under the plan's minimum
    for _ in range(3):  # this search's epochs take 20 s, not the planned 10: the guard goes by them
        guard.last_epoch_at["whole"] = time.time() - 20
        guard.spend_epoch("whole")
    assert guard.claim("slower", "tpe", time.time() + 141.5) == 7
    assert guard.claim("not whole", "tpe", time.time() + 150) == 7  # 10 epochs would take 201 s
    budgeted = StartGuard({**plan, "epochs_budget": 16.0})
    assert budgeted.claim("a", "tpe", None) == 10 and budgeted.claim("b", "tpe", None) == 6  # the epochs left
    assert budgeted.claim("c", "tpe", None) is None


def test_the_search_asks_the_guard_before_each_trial(monkeypatch):
    """The searcher refuses a trial the guard has no room for: FINISHED under a time budget, later (None) while
    an epochs budget may still free room."""
    from ray.tune.search import Searcher

    from fer_search.search import ray_adaptations, session, study_writes

    searcher = ray_adaptations.ExperimentOptunaSearch.__new__(ray_adaptations.ExperimentOptunaSearch)
    monkeypatch.setattr(ray_adaptations, "_next_trial_kind", lambda study: "tpe")
    searcher._ot_study = "an open study"  # the guard is asked before anything is asked of the study
    searcher._writes = study_writes.StudyWrites()
    session.current.start(50, None, {"seconds": {"tpe": 100.0}, "epochs": {"tpe": 10.0}, "lanes": 0,
                                   "epochs_budget": None})
    try:
        assert searcher.suggest("a") == Searcher.FINISHED
    finally:
        session.current.end()
    session.current.start(None, None, {"seconds": {"tpe": 1.0}, "epochs": {"tpe": 10.0}, "lanes": 0,
                                     "epochs_budget": 15.0})
    try:
        session.current.guard.claim("running", "tpe", None)
        assert searcher.suggest("b") is None
    finally:
        session.current.end()
    # A lane's last trial: the guard grants 6 of the 10 epochs, and the trial's configuration says so.
    monkeypatch.setattr(study_writes, "ask", lambda study, experiment: types.SimpleNamespace(number=7))
    searcher._space = lambda trial: {"arch": "simple_cnn", "epochs": 10}
    searcher._numbers, searcher._experiment = {}, "e"
    session.current.start(None, None, {"seconds": {"tpe": 1.0}, "epochs": {"tpe": 10.0}, "lanes": 0,
                                     "epochs_budget": 16.0, "tail": {"min_epochs": 5, "epoch_s": 0.1,
                                                                     "first_epoch_extra_s": 0.0}})
    try:
        assert searcher.suggest("whole") == {"arch": "simple_cnn", "epochs": 10}
        assert searcher.suggest("last") == {"arch": "simple_cnn", "epochs": 6}
    finally:
        session.current.end()


def test_random_sampling_is_a_sampler_option(tmp_path):
    import optuna

    from fer_search.search.ray_adaptations import ExperimentOptunaSearch
    from fer_search.search.sampler import SpaceSampler
    from fer_search.search.study import default_location
    from search_spaces import load_space

    sampler = SpaceSampler([load_space(str(SPACES / "tiny_simple_cnn.yaml"))], {})
    (tmp_path / "r").mkdir()
    searcher = ExperimentOptunaSearch(sampler, metric="best_val_acc", seed=0, location=default_location(str(tmp_path), "r"),
                                      experiment="r", optuna_sampler="random")
    assert isinstance(searcher._ot_study.sampler, optuna.samplers.RandomSampler)


# --- the commands ---------------------------------------------------------------------------------------------

def test_a_search_whose_budget_holds_no_trial_says_so_first_and_starts_nothing(tmp_path, capsys):
    from fer_search.cli import main

    code = main(["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic", "--storage",
                 str(tmp_path), "--name", "small", "--time-budget", "0.2"])
    captured = capsys.readouterr()
    assert code == 2 and "error: the time budget of 0.2 min cannot hold one trial" in captured.err
    assert "start" not in captured.out and not (tmp_path / "small" / "experiment.json").exists()


@pytest.mark.slow
def test_a_planned_search_prints_and_records_its_plan_and_compares_it_with_what_ran(tmp_path, capsys):
    from fer_search.cli import main
    from fer_search.search import layout
    from fer_search.search.record import load_record

    code = main(["run", "--space", str(SPACES / "tiny_simple_cnn.yaml"), "--data", "synthetic", "--storage",
                 str(tmp_path), "--name", "planned", "--time-budget", "2", "--max-train-images", "256", "--cpus-per-trial", "1",
                 "--num-samples", "3"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert out.index("plan: budget 2 min") < out.index("start  000_")  # printed before the first trial
    assert "expected end:" in out and "plan vs actual: " in out
    recorded = load_record(tmp_path / "planned").plan
    assert recorded["num_samples"] == 3 and recorded["actual"]["trials_started"] <= 3
    trials = layout.list_trials(tmp_path, "planned")
    assert all(t.config["epochs"] == recorded["tpe_epochs"] for t in trials)  # the plan's epochs
    assert (tmp_path / "planned" / "speed.json").is_file()


@pytest.mark.slow
def test_a_planned_point_on_a_faster_network_runs_the_epochs_its_lane_holds(tmp_path, capsys):
    from fer_search.cli import main
    from fer_search.search import layout
    from fer_search.search.record import load_record

    space = tmp_path / "two_networks.yaml"
    space.write_text("family: simple_cnn\n"
                     "fixed: {arch: simple_cnn, kernel_size: 3, fc_width: 32, batch_size: 32, patience: 0}\n"
                     "points:\n  wide: {widths: [64, 128], lr: 0.003}\n  narrow: {widths: [4, 8], lr: 0.003}\n"
                     "params:\n  lr: {log: [0.001, 0.005]}\n")
    code = main(["run", "--space", str(space), "--data", "synthetic", "--storage", str(tmp_path), "--name", "lanes",
                 "--time-budget", "2", "--max-train-images", "256", "--cpus-per-trial", "1", "--num-samples", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    recorded = load_record(tmp_path / "lanes").plan
    planned = {p["point"]: p["epochs"] for p in recorded["points"]}
    assert planned["wide"] == recorded["tpe_epochs"] < planned["narrow"]
    assert recorded["point_epochs"] == {"simple_cnn/narrow": planned["narrow"]}
    assert "documented point simple_cnn/narrow runs" in captured.out
    trials = {t.config["point"]: t for t in layout.list_trials(tmp_path, "lanes")}
    for point, epochs in planned.items():  # each ran its own plan's epochs, to the end of its schedule
        assert trials[point].config["epochs"] == epochs == trials[point].epochs


def test_train_with_a_time_budget_plans_its_epochs(tmp_path, capsys):
    import csv

    from fer_search.cli import main

    out = tmp_path / "run"
    code = main(["train", "simple_cnn", "--data", "synthetic", "--out", str(out), "--time-budget", "1",
                 "--set", "widths=(8,16)", "--set", "fc_width=32", "--set", "max_train_images=256",
                 "--set", "schedule=onecycle"])
    assert code == 0
    recorded = json.loads((out / "plan.json").read_text())
    assert recorded["epochs"] >= 1 and recorded["epochs_ran"] == recorded["epochs"]
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == recorded["epochs"]
    assert "plan vs actual" in capsys.readouterr().out
    assert main(["train", "simple_cnn", "--data", "synthetic", "--out", str(out), "--time-budget", "1",
                 "--epochs", "3"]) == 2
