"""The validation split: by person, seeded, stratified, and the same for every task.

All photos of a person fall on one side (a per-image split leaks faces into validation and inflates accuracy).
The split depends only on the people, never on the task, so every trial with the same seed and ratio validates on
the same people: that is what lets the ensemble compare and combine trials by validation score."""
from __future__ import annotations

import warnings

import numpy as np

from harness.errors import UserError

# K-fold's seed is fixed, not --seed: every K-fold trial with the same K validates each image in the same fold,
# whatever its seed or task, so their out-of-fold predictions can be compared and combined image by image.
FOLD_SEED = 0


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


MIN_TRAINING_IMAGES = 2  # BatchNorm cannot train on one image


def check_training_images(count: int, images: int, what: str) -> None:
    """One line when a split leaves fewer than MIN_TRAINING_IMAGES to train on (`what` says which setting did)."""
    if count < MIN_TRAINING_IMAGES:
        raise UserError(f"{what} leaves {count} of the data set's {images} images to train on: expected at least "
                        f"{MIN_TRAINING_IMAGES}")


def assign_folds(groups: np.ndarray, strata: np.ndarray, folds: int, seed: int = FOLD_SEED) -> np.ndarray:
    """Per image, its fold in 0..folds-1: grouped (every image of a group, a person, in one fold) and stratified on
    `strata` per image (the 18-class multi label, so the folds are the same people whatever the task), by
    sklearn's StratifiedGroupKFold with shuffling from `seed`."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups, strata = np.asarray(groups), np.asarray(strata)
    people = len(np.unique(groups))
    if not 2 <= folds <= people:
        raise UserError(f"folds must be 1 (a holdout split) or 2..{people} (the data set's {people} split units), "
                        f"got {folds}")
    fold_of = np.empty(len(groups), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class rarer than K images cannot be in every fold: expected on small sets
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(groups)), strata, groups)):
            fold_of[held_out] = fold
    return fold_of


def fold_indices(fold_of: np.ndarray, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train image indices, held-out image indices) of fold `fold` (0-based)."""
    return np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
