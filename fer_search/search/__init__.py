"""The search: Ray Tune + Optuna TPE + ASHA over the families' search spaces.

Only ray_tune.py imports Ray. The rest works without it: cli.py (`run`, `spaces`), settings.py
(run-wide settings, resource and storage checks), sampler.py (the spaces as an Optuna define-by-run
function), trial.py (one trial: train, checkpoint, report), tensorboard.py, layout.py (the
trial files, read by the analysis), and the planned budgets: speed.py (measured speed, cached), plan.py
(the planner's arithmetic), budget.py (measure, plan, apply, compare) and guard.py (a trial starts only
where its schedule fits).
"""
