"""The search: Ray Tune + Optuna TPE + ASHA over the families' search spaces.

Only the ray_*.py modules import Ray: ray_tune.py (the search and the path of one trial: start here),
ray_adaptations.py (what it changes in Ray's and Optuna's behaviour) and ray_console.py (console lines, log
routing); session.py holds what this driver session asked for, which they share. The rest works without
Ray: cli.py (`run`, `spaces`), experiment.py (which experiment `run` starts or resumes, its record), settings.py
(run-wide settings, resource and storage checks), sampler.py (the spaces as an Optuna define-by-run function),
trial.py (one trial: train, checkpoint, report), tensorboard.py, layout.py (the trial files, read by the
analysis), and the planned budgets: speed.py (measured speed, cached), plan.py (the planner's arithmetic),
budget.py (measure, plan, apply, compare) and guard.py (a trial starts only where its schedule fits).
"""
