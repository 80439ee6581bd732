"""The validation split: by person, seeded, stratified, and the same for every task.

All photos of a person fall on one side (a per-image split leaks faces into validation and inflates accuracy).
The split depends only on the people, never on the task, so every trial with the same seed and ratio validates on
the same people: that is what lets the ensemble compare and combine trials by validation score."""
from __future__ import annotations

import numpy as np


def allocate(stratum_sizes: np.ndarray, ratio: float) -> np.ndarray:
    """How many units each stratum gives to validation: proportional, with the total round(n * ratio) reached
    by handing the leftover units to the strata with the largest remainders (earlier stratum on ties).
    Halves round up (7.5 people -> 8), not to even as Python's round() would."""
    exact = stratum_sizes * ratio
    quota = np.floor(exact).astype(np.int64)
    leftover = int(np.floor(stratum_sizes.sum() * ratio + 0.5)) - int(quota.sum())
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:leftover]] += 1
    return np.minimum(quota, stratum_sizes)


def split_groups(strata: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Per group (person), True when it goes to validation. Sampled without replacement within each stratum."""
    strata = np.asarray(strata)
    is_val = np.zeros(len(strata), dtype=bool)
    if ratio <= 0 or len(strata) == 0:
        return is_val
    values, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    quota = allocate(sizes, ratio)
    rng = np.random.default_rng(seed)
    for stratum, take in enumerate(quota):
        members = np.flatnonzero(inverse == stratum)
        is_val[rng.choice(members, size=take, replace=False)] = True
    return is_val


def split_indices(groups: np.ndarray, group_strata: np.ndarray, ratio: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train image indices, validation image indices) for images whose split unit is groups[i]."""
    is_val = split_groups(group_strata, ratio, seed)[groups]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
