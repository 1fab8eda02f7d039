"""How an ensemble's vote weights and temperature are fitted, on validation probabilities only.

Every candidate combination is computed with `fer_search.training.combine_probs`, the same function the
saved ensemble file runs, so the figures fitted here are the figures the file reproduces.
All fits are deterministic: no random starts, ties broken by member order (best member first).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from fer_search.inference.predictor import combine_probs
from fer_search.training.metrics import classification_metrics, negative_log_likelihood as nll

METHODS = ("mean", "greedy", "weighted")
MIN_WEIGHT = 0.01  # fitted weights below this are dropped


def combine(member_probs: np.ndarray, weights: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(M, N, C) numpy probabilities -> (N, C), through the one shared definition."""
    with torch.no_grad():
        mixed = combine_probs(torch.as_tensor(member_probs, dtype=torch.float64),
                              torch.as_tensor(weights, dtype=torch.float64), float(temperature))
    return mixed.numpy()


def score(probs: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """The selection metric (`val_acc` or `val_macro_f1`) of one set of probabilities."""
    return classification_metrics(probs, labels, prefix="val_")[metric]


def fit_weights(member_probs: np.ndarray, labels: np.ndarray, method: str, metric: str = "val_acc") -> np.ndarray:
    """Vote weights (M,), summing to 1, for members ordered best first."""
    if method == "mean":
        return np.full(len(member_probs), 1.0 / len(member_probs))
    if method == "greedy":
        return greedy_weights(member_probs, labels, metric)
    if method == "weighted":
        return nll_weights(member_probs, labels)
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def greedy_weights(member_probs: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """Caruana et al. (2004) forward selection with replacement.

    Starts from the best single member and adds, one at a time, whichever member most improves the
    metric (validation NLL breaks ties: accuracy alone is too coarse to steer by), for 4 rounds per
    member. Returns the best bag seen, so the result is never worse than the best member on the
    validation metric.
    """
    m = len(member_probs)

    def key(counts: np.ndarray) -> tuple[float, float]:
        mixed = combine(member_probs, counts)
        return score(mixed, labels, metric), -nll(mixed, labels)

    singles = [key(np.eye(m)[i]) for i in range(m)]
    counts = np.eye(m)[max(range(m), key=lambda i: singles[i])]  # max keeps the first of equals
    best_counts, best_key = counts.copy(), key(counts)
    for _ in range(4 * m):
        trials = [key(counts + np.eye(m)[i]) for i in range(m)]
        pick = max(range(m), key=lambda i: trials[i])
        counts = counts + np.eye(m)[pick]
        if trials[pick] > best_key:
            best_counts, best_key = counts.copy(), trials[pick]
    return best_counts / best_counts.sum()


def bagged_caruana(library_probs: np.ndarray, labels: np.ndarray, top: int, metric: str, *, bags: int = 20,
                   bag_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Caruana et al. (2006): greedy selection with replacement in `bags` random halves of the library
    (models ordered best first), the bags' weights summed. -> weights (L,) with at most `top` non-zero,
    summing to 1: the `top` members the bags voted for most (ties: the better model alone), their summed
    votes as weights. Bagging keeps one lucky model from taking the whole vote on a small validation set.
    Never below the best model on the validation metric: where the vote scores lower, that model alone.
    """
    size = len(library_probs)
    votes = np.zeros(size)
    rng = np.random.default_rng(seed)
    # A bag of one model is no selection, only a coin toss over the library: a library of two is searched whole.
    bag_size = min(size, max(2, round(bag_fraction * size)))
    for _ in range(bags if size > bag_size else 1):
        bag = np.sort(rng.choice(size, bag_size, replace=False))
        votes[bag] += greedy_weights(library_probs[bag], labels, metric)
    ranked = sorted(range(size), key=lambda i: (-votes[i], i))  # ties: the better model (lower index)
    weights = np.zeros(size)
    chosen = [i for i in ranked[:top] if votes[i] > 0]
    weights[chosen] = votes[chosen]
    weights /= weights.sum()
    if score(combine(library_probs, weights), labels, metric) < score(library_probs[0], labels, metric):
        return np.eye(size)[0]
    return weights


def nll_weights(member_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights on the simplex (softmax of free logits, starting uniform) minimising validation NLL."""
    probs = torch.as_tensor(member_probs, dtype=torch.float64)
    target = torch.as_tensor(labels)
    logits = torch.zeros(len(member_probs), dtype=torch.float64, requires_grad=True)

    def loss() -> torch.Tensor:
        mixed = combine_probs(probs, torch.softmax(logits, 0), 1.0)
        return -torch.log(mixed[torch.arange(len(target)), target].clamp_min(1e-12)).mean()

    _minimise(logits, loss)
    weights = torch.softmax(logits, 0).detach().numpy()
    # Softmax never reaches 0: drop members under 1% of the vote so the ensemble file does not run
    # networks that barely count (the pruned weights are the ones scored and saved).
    weights[weights < MIN_WEIGHT] = 0.0
    return weights / weights.sum()


def fit_temperature(member_probs: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The temperature minimising validation NLL of the combined vote (argmax, hence accuracy, unchanged).

    A bounded scalar search over log T: it calls the shared `combine_probs` as is (no gradient through
    its temperature branch needed), and the bounds keep a tiny validation set from giving T = 1e6.
    """
    result = minimize_scalar(lambda log_t: nll(combine(member_probs, weights, np.exp(log_t)), labels),
                             bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def _minimise(parameter: torch.Tensor, loss_fn) -> None:
    optimizer = torch.optim.LBFGS([parameter], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss_fn()
        value.backward()
        return value

    optimizer.step(closure)
