"""The `ensemble` command's work, without its console lines: the members chosen among a search's trials on
validation, the ensemble built and scored (re-scored with test-time views, and refit, where asked), its files and
its report written. analysis/cli.py checks the options and prints what this returns."""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from analysis import ensemble as ens
from analysis.leaderboard import find_trials, leaderboard, search_metric
from analysis.report import Scores, score, write_report
from fer_search.errors import UserError
from fer_search.search import layout
from fer_search.search.storage import StoragePath


@dataclass
class EnsembleRun:
    trials: list[layout.Trial]  # every trial of the experiments
    ensemble: ens.Ensemble
    scores: Scores
    refit_scores: dict | None  # the refit ensemble's test report (None: not refit, or no labelled test split)
    files: dict[str, Path]  # what each written file is -> its path
    report: Path


def make_ensemble(storage: StoragePath, names: list[str], out: Path, *, top: int, method: str, library: int,
                  diverse: bool, metric: str | None, tta: str | None, refit: bool, data_source: str | None,
                  keep_test_copies: bool, device: str) -> EnsembleRun:
    """The ensemble of the experiments `names` under storage, written to `out`. `data_source` (--data) is read for
    `tta` and `refit`, carved as the search carved its validation split."""
    trials = find_trials(storage, names)
    candidates = ens.load_candidates(trials)
    if not candidates:
        raise UserError(f"no finished trial with stored results among the {len(trials)} trial(s) under {storage}")
    metric = search_metric([c.trial for c in candidates], metric)
    members, weights, chosen_from = ens.choose(candidates, top, metric, method, diverse=diverse, library=library)
    data = None
    if data_source:
        from fer_search.data import load_data
        from fer_search.training.trainer import resolve_device

        seed = int(members[0].trial.config.get("split_seed", 0))  # the search's: its validation carve
        data = load_data(data_source, seed=seed, drop_test_copies=not keep_test_copies)
        device = str(resolve_device(device))
    if tta:
        ens.rescore_with_tta(members, data, tta, device=device)
    ensemble = ens.build(members, method, metric, tta or ens.members_tta(members), weights, chosen_from)
    scores = score(ensemble)

    out.mkdir(parents=True, exist_ok=True)
    files = {"the ensemble, loadable by evaluate, predict and export": ens.save(ensemble, out / "ensemble.pt")}
    refit_scores = None
    if refit:
        from analysis import refit as refitting
        from fer_search.training.metrics import full_report

        path = refitting.refit(ensemble, data, out / "refit", device=device)
        files["the refit ensemble (members retrained on train + validation)"] = path
        if "test" in scores.reports:
            refit_scores = full_report(refitting.score_on_test(path, data, device), ensemble.labels("test"))
    if ens.kaggle_test(ensemble):
        files["Kaggle submission (id, emotion) for the test split"] = ens.write_submission(ensemble,
                                                                                          out / "submission.csv")
    command = "python -m fer_search " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = write_report(ensemble, scores, leaderboard(trials, metric), out, command=command,
                          candidates=len(candidates), files=files, refit=refit_scores)
    return EnsembleRun(trials, ensemble, scores, refit_scores, files, report)
