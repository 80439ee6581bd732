"""Classification scores shared by the trial loop and the ensemble (numpy, vectorised)."""
from __future__ import annotations

import numpy as np

# The scores an ensemble selection maximises, named alike by `python -m ensemble --metric` and
# `python -m harness.report --select_metric` (and the one both default to), with the metrics.jsonl key of each.
SELECTION_METRICS: dict[str, str] = {"macro_f1": "val_f1", "accuracy": "val_acc"}
DEFAULT_SELECTION_METRIC = "macro_f1"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts[i, j] = images of true class i predicted as j."""
    index = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(y_true == np.asarray(y_pred))) if y_true.size else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Macro-averaged F1 over the classes present in y_true or y_pred (sklearn's convention: a class that is
    neither true nor predicted is left out rather than counted as 0 or 1)."""
    counts = confusion_matrix(y_true, y_pred, num_classes)
    true_pos = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    f1 = 2 * true_pos[present] / (support[present] + predicted[present])
    return float(f1.mean())
