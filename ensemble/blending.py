"""Soft voting: weighted means of probability rows, and the argmax vote (pure numpy, no per-row loops)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Mean = Literal["arithmetic", "geometric"]
MEANS: tuple[str, ...] = ("arithmetic", "geometric")

# A probability printed as 0 would make the geometric mean's log -inf and let one member veto a class outright.
_FLOOR = 1e-12


def vote_space(probs: np.ndarray, mean: Mean) -> np.ndarray:
    """The space in which members are averaged: probabilities, or log-probabilities for the geometric mean.
    A weighted sum there has the same argmax as the blend, which is what makes selection cheap."""
    return probs if mean == "arithmetic" else np.log(np.maximum(probs, _FLOOR))


def blend(probs: Sequence[np.ndarray], weights: Sequence[float], mean: Mean = "arithmetic") -> np.ndarray:
    """Weighted arithmetic or geometric mean of equally shaped (rows, classes) arrays, renormalised per row."""
    if len(probs) != len(weights) or not probs:
        raise ValueError("blend needs one weight per member and at least one member")
    total = sum(w * vote_space(p, mean) for p, w in zip(probs, weights)) / float(sum(weights))
    if mean == "geometric":
        total = np.exp(total - total.max(axis=1, keepdims=True))
    return total / total.sum(axis=1, keepdims=True)


def vote(probs: np.ndarray) -> np.ndarray:
    """The class with the highest probability per row (the lowest class index on ties)."""
    return np.argmax(probs, axis=1)
