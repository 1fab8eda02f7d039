"""What a search and its ensemble came to, in two sentences for the console (the `ensemble` command's last words)."""
from __future__ import annotations

from collections import Counter

from analysis import combine
from analysis.ensemble import Ensemble
from fer_search.search import layout


def describe(trials: list[layout.Trial], ensemble: Ensemble, *, time_budget: bool = False) -> str:
    """How many trials ran and which ones were stopped early; which members the ensemble holds and why."""
    return f"{_search_sentence(trials, time_budget)} {_ensemble_sentence(ensemble)}"


def _search_sentence(trials: list[layout.Trial], time_budget: bool) -> str:
    several = len({t.experiment for t in trials}) > 1
    counts = Counter(t.status for t in trials)
    by_epoch: dict[int, list[str]] = {}
    for trial in trials:
        if trial.status == layout.STOPPED:
            by_epoch.setdefault(trial.epochs, []).append(_name(trial, several))
    sentence = f"The search ran {len(trials)} trials: {counts[layout.COMPLETED]} completed"
    if by_epoch:
        stopped = "; ".join(f"{_and(names)} at epoch {epoch}" for epoch, names in sorted(by_epoch.items()))
        sentence += f", {'ASHA or the time budget' if time_budget else 'ASHA'} stopped {stopped}"
    others = [f"{n} {status}" for status, n in counts.items() if status not in (layout.COMPLETED, layout.STOPPED)]
    return sentence + "".join(f", {other}" for other in others) + "."


def _ensemble_sentence(ensemble: Ensemble) -> str:
    several = len({m.trial.experiment for m in ensemble.members}) > 1
    metric, labels = ensemble.metric, ensemble.labels("val")
    used = [(m, w) for m, w in zip(ensemble.members, ensemble.weights) if w > 0]
    best = max((m for m, _ in used), key=lambda m: m.score(metric))
    if len(used) == 1:
        if ensemble.library:
            how = f"no vote of the best {ensemble.library} trials scored higher on validation"
        else:
            how = "the fitted vote gave the others no weight" if len(ensemble.members) > 1 else "one was asked for"
        return f"The ensemble is {_name(best.trial, several)} alone ({metric} {best.score(metric):.4f}): {how}."
    voted, alone = combine.score(ensemble.probs("val"), labels, metric), best.score(metric)
    weights = ", ".join(f"{w:.2f}" for _, w in used)
    if ensemble.library:
        why = f"bagged greedy selection from the best {ensemble.library} trials kept the vote that scored best"
    else:
        why = (f"the {len(used)} best trials by {metric}, with "
               + ("equal weights" if ensemble.method == "mean" else "weights fitted on validation"))
    compared = "above" if voted > alone else "level with" if voted == alone else "below"
    return (f"The ensemble holds {_and([_name(m.trial, several) for m, _ in used])} (weights {weights}): {why}; "
            f"its vote scores {metric} {voted:.4f} on validation, {compared} its best member alone "
            f"({_name(best.trial, several)}, {alone:.4f}).")


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _name(trial: layout.Trial, with_experiment: bool) -> str:
    return f"{trial.experiment}/{trial.name}" if with_experiment else trial.name
