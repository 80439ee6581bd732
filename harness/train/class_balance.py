"""Class imbalance, from the training split's label counts: per-class loss weights (`--class_weights`) and
per-image sampling weights (`--sampler weighted`). Pure functions of the labels; the counts are the training
split's only, so validation images never shape training."""
from __future__ import annotations

import numpy as np

CLASS_WEIGHTS = ("none", "inverse", "sqrt_inverse")
SAMPLERS = ("none", "weighted")


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    return np.bincount(labels, minlength=num_classes)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray | None:
    """One weight per class, or None for 'none'. inverse: N / (C * n_k), sklearn's 'balanced' (C the classes
    present); sqrt_inverse: proportional to 1 / sqrt(n_k), a milder tilt. Both are scaled so the mean weight per
    training image is 1 (sum_k n_k w_k = N), so a weighted loss keeps the unweighted loss's scale. A class absent
    from the training split gets 0: it has nothing to weigh."""
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {mode!r}")
    if mode == "none":
        return None
    counts = class_counts(labels, num_classes).astype(np.float64)
    present = counts > 0
    raw = np.zeros(num_classes)
    raw[present] = 1 / counts[present] if mode == "inverse" else 1 / np.sqrt(counts[present])
    return raw * counts.sum() / (raw * counts).sum()


def sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per training image, 1 / (how many training images share its label), for torch's WeightedRandomSampler: each
    class is then drawn equally often on average. labels: [N] or [N, heads]; with several heads the unit is the
    combination of the heads' labels (for mask, gender and age: the 18-class label)."""
    labels = np.asarray(labels)
    rows = labels.reshape(len(labels), -1)
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse.reshape(-1)]
