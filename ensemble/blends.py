"""Blends fitted on validation (or out-of-fold) probabilities, and the score that compares them on rows they were
not fitted on. docs/ensemble.md ("Blends") says when each is chosen.

- caruana: greedy forward selection with replacement (ensemble/selection.py); the weights are the picks.
- weights: weights on the simplex that minimise the blend's log-loss (a smooth stand-in for accuracy and macro-F1),
  by scipy's SLSQP from equal weights, over the WEIGHED_MEMBERS best members; the blend is the --mean one.
- stack: a multinomial logistic regression (scikit-learn, C = 1) on the concatenated log-probabilities of the
  STACKED_MEMBERS best members.

"Best members" are ranked by their own score on the rows being fitted, so that ranking is part of the fit. Out of
fit: the rows are split into FOLDS folds (stratified by label when every class has FOLDS rows), shuffled with
FOLD_SEED; each blend is fitted on all folds but one and predicts the one left out, so every row is predicted by a
blend that never saw it. Everything here is deterministic."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.blending import Mean, blend, vote_space
from ensemble.selection import METRICS, Selection, select_ensemble

FOLDS = 5
FOLD_SEED = 0
WEIGHED_MEMBERS = 32  # weights takes at most this many members (the best by their own score)
STACKED_MEMBERS = 16  # stack too: its features are members x classes, its time grows with them
MAX_ROWS = 50_000     # rows above this are not refitted FOLDS times (memory: members x rows x classes floats)
STACK_ITERATIONS = 300
STACK_FLOOR = 1e-6    # log-probabilities below log(1e-6) are clipped: one member's certain 0 cannot dominate
LOSS_FLOOR = 1e-15
BLENDS = ("caruana", "weights", "stack")


@dataclass(frozen=True)
class BlendSettings:
    metric: str = "macro_f1"
    rounds: int = 25
    mean: Mean = "arithmetic"


@dataclass(frozen=True)
class WeightedBlend:
    weights: tuple[float, ...]          # one per member; 0 leaves a member out
    mean: Mean
    selection: Selection | None = None  # caruana's, for its report

    def combine(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        return blend(probs, self.weights, self.mean)


@dataclass(frozen=True)
class Stacked:
    members: tuple[int, ...]  # the members whose probabilities are the features
    model: object             # a fitted sklearn LogisticRegression
    num_classes: int

    def combine(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(probs[0]), self.num_classes))
        with one_blas_thread():
            out[:, self.model.classes_] = self.model.predict_proba(stack_features([probs[i] for i in self.members]))
        return out


Fitted = WeightedBlend | Stacked


def one_blas_thread() -> Any:
    """These matrices are small: BLAS threads only contend, and on a busy machine they thrash (a stacking fit of
    252 rows took 51 s with OpenBLAS's 2 threads against 1.9 s with one, on 2 loaded cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)
Fitter = Callable[[Sequence[np.ndarray], np.ndarray, int, BlendSettings], Fitted]


def own_scores(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, metric: str) -> np.ndarray:
    return np.array([METRICS[metric](labels, np.argmax(p, axis=1), num_classes) for p in probs])


def best_members(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, metric: str,
                 limit: int) -> list[int]:
    """The `limit` best members by their own score (the earlier on ties), in member order."""
    ranked = np.argsort(-own_scores(probs, labels, num_classes, metric), kind="stable")
    return sorted(int(i) for i in ranked[:limit])


def fit_caruana(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, s: BlendSettings) -> Fitted:
    selection = select_ensemble(probs, labels, s.rounds, s.metric, s.mean)
    return WeightedBlend(tuple(selection.counts.astype(float).tolist()), s.mean, selection)


def log_loss_and_gradient(weights: np.ndarray, votes: np.ndarray, labels: np.ndarray, mean: Mean
                          ) -> tuple[float, np.ndarray]:
    """The blend's mean log-loss and its gradient in the weights; votes: [members, rows, classes] in vote space
    (probabilities, or log-probabilities for the geometric mean)."""
    rows = np.arange(votes.shape[1])
    own = votes[:, rows, labels]  # [members, rows]: each member's vote for the true class
    total = np.tensordot(weights, votes, axes=1)
    if mean == "arithmetic":
        true = np.maximum(total[rows, labels], LOSS_FLOOR)
        return float(-np.log(true).mean()), -(own / true).mean(axis=1)
    top = total.max(axis=1, keepdims=True)
    log_norm = (top + np.log(np.exp(total - top).sum(axis=1, keepdims=True)))[:, 0]
    softmax = np.exp(total - log_norm[:, None])
    expected = np.einsum("rk,mrk->mr", softmax, votes)
    return float(-(total[rows, labels] - log_norm).mean()), -(own - expected).mean(axis=1)


def optimal_weights(probs: Sequence[np.ndarray], labels: np.ndarray, mean: Mean) -> np.ndarray:
    """Weights on the simplex minimising the blend's log-loss, from equal weights; tiny weights become 0."""
    from scipy.optimize import minimize

    if len(probs) == 1:
        return np.ones(1)
    votes = np.stack([vote_space(np.asarray(p, dtype=np.float64), mean) for p in probs])
    start = np.full(len(probs), 1 / len(probs))
    with one_blas_thread():
        found = minimize(log_loss_and_gradient, start, args=(votes, labels, mean), jac=True, method="SLSQP",
                         bounds=[(0.0, 1.0)] * len(probs), options={"maxiter": 200, "ftol": 1e-10},
                         constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones_like(w)}])
    weights = np.clip(found.x, 0.0, None)
    weights[weights < 1e-6] = 0.0
    return weights / weights.sum() if weights.sum() > 0 else start


def fit_weights(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, s: BlendSettings) -> Fitted:
    chosen = best_members(probs, labels, num_classes, s.metric, WEIGHED_MEMBERS)
    found = optimal_weights([probs[i] for i in chosen], labels, s.mean)
    weights = np.zeros(len(probs))
    weights[chosen] = found
    return WeightedBlend(tuple(weights.tolist()), s.mean)


def stack_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.log(np.clip(p, STACK_FLOOR, 1.0)) for p in probs], axis=1)


def fit_stack(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, s: BlendSettings) -> Fitted:
    """With one class in the rows there is nothing to learn: the chosen members' plain mean."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    chosen = best_members(probs, labels, num_classes, s.metric, STACKED_MEMBERS)
    if len(np.unique(labels)) < 2:
        return WeightedBlend(tuple(float(i in chosen) for i in range(len(probs))), s.mean)
    model = LogisticRegression(C=1.0, max_iter=STACK_ITERATIONS, random_state=0)
    with warnings.catch_warnings(), one_blas_thread():  # stopped at STACK_ITERATIONS, a fit is still scored
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(stack_features([probs[i] for i in chosen]), labels)
    return Stacked(tuple(chosen), model, num_classes)


FITTERS: dict[str, Fitter] = {"caruana": fit_caruana, "weights": fit_weights, "stack": fit_stack}


@dataclass(frozen=True)
class OutOfFit:
    score: float     # --metric of the out-of-fit predictions
    log_loss: float


def fold_of_rows(labels: np.ndarray, folds: int = FOLDS, seed: int = FOLD_SEED) -> np.ndarray:
    """Each row's fold: stratified by label when every class present has `folds` rows, else plain shuffled folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels)
    stratified = counts[counts > 0].min() >= folds
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for number, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[held] = number
    return fold


def out_of_fit(fitter: Fitter, probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int,
               s: BlendSettings) -> np.ndarray:
    """Every row's blended probabilities from the blend fitted on the other folds."""
    fold = fold_of_rows(labels)
    out = np.zeros((len(labels), num_classes))
    for number in range(FOLDS):
        held = fold == number
        fitted = fitter([p[~held] for p in probs], labels[~held], num_classes, s)
        out[held] = fitted.combine([p[held] for p in probs])
    return out


def comparable(rows: int) -> bool:
    """Enough rows for FOLDS folds of at least two, and few enough to refit FOLDS times."""
    return 2 * FOLDS <= rows <= MAX_ROWS


def compare_blends(probs: Sequence[np.ndarray], labels: np.ndarray, num_classes: int, s: BlendSettings
                   ) -> dict[str, OutOfFit]:
    """Each blend's out-of-fit --metric and log-loss."""
    rows = np.arange(len(labels))
    scores = {}
    for name, fitter in FITTERS.items():
        predicted = out_of_fit(fitter, probs, labels, num_classes, s)
        scores[name] = OutOfFit(METRICS[s.metric](labels, np.argmax(predicted, axis=1), num_classes),
                                float(-np.log(np.maximum(predicted[rows, labels], LOSS_FLOOR)).mean()))
    return scores


def choose_blend(scores: dict[str, OutOfFit], requested: str) -> str:
    """`requested`, or for 'best' the best out-of-fit score (ties: the lower log-loss, then the order of BLENDS);
    caruana when there are no scores."""
    if requested != "best":
        return requested
    if not scores:
        return "caruana"
    return min(scores, key=lambda name: (-scores[name].score, scores[name].log_loss, BLENDS.index(name)))
