"""Greedy forward ensemble selection with replacement (Caruana et al., ICML 2004, "Ensemble selection from
libraries of models"), scored on validation predictions."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ensemble.blending import Mean, vote_space
from harness.metrics import DEFAULT_SELECTION_METRIC, SELECTION_METRICS, accuracy, macro_f1

METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "macro_f1": macro_f1,
    "accuracy": lambda y_true, y_pred, num_classes: accuracy(y_true, y_pred),
}
assert set(METRICS) == set(SELECTION_METRICS)


@dataclass(frozen=True)
class Selection:
    counts: np.ndarray         # times each candidate was picked in the kept prefix; its weight is counts / rounds
    score: float               # validation score of that ensemble
    single_scores: np.ndarray  # each candidate's own validation score
    trace: tuple[float, ...]   # score after each round

    @property
    def rounds(self) -> int:
        return int(self.counts.sum())

    @property
    def best_single(self) -> int:
        return int(np.argmax(self.single_scores))


def select_ensemble(candidates: Sequence[np.ndarray], labels: np.ndarray, rounds: int = 25,
                    metric: str = DEFAULT_SELECTION_METRIC, mean: Mean = "arithmetic") -> Selection:
    """Start from the empty ensemble; each round add (with replacement) the candidate whose addition scores best,
    the earliest candidate on ties. Keep the best-scoring prefix, the shortest on ties. Round one picks the best
    single candidate, so the result scores at least as well as it.

    candidates: (rows, classes) validation probabilities, rows aligned with `labels`."""
    if not candidates or rounds < 1:
        raise ValueError("selection needs at least one candidate and one round")
    score = METRICS[metric]
    stack = np.stack([vote_space(np.asarray(c, dtype=np.float64), mean) for c in candidates])
    num_classes = stack.shape[2]
    total = np.zeros(stack.shape[1:])
    picks: list[int] = []
    trace: list[float] = []
    single_scores = np.empty(0)
    for _ in range(rounds):
        # The ensemble's prediction is the argmax of the summed votes; scaling by the member count changes nothing.
        predictions = np.argmax(total[None] + stack, axis=2)
        scores = np.array([score(labels, predicted, num_classes) for predicted in predictions])
        if not picks:
            single_scores = scores
        best = int(np.argmax(scores))
        picks.append(best)
        trace.append(float(scores[best]))
        total += stack[best]
    kept = int(np.argmax(trace)) + 1
    counts = np.bincount(picks[:kept], minlength=len(candidates))
    return Selection(counts=counts, score=trace[kept - 1], single_scores=single_scores, trace=tuple(trace))
