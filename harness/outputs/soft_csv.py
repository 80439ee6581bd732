"""When a trial keeps an epoch's predictions, and the soft CSVs it writes (the ensemble reads them)."""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from harness.data.labels import joint_probs, multi_label

EVAL_PREFIX, VALID_PREFIX = "submission", "valid"
# submission{epoch}_{train_acc:.4f}_{train_loss:.4f}_soft.csv: stricter than 'submission*', so that an ensemble's
# blended outputs (submission_mask_soft.csv) are never taken for a trial's.
EVAL_NAME = re.compile(rf"{EVAL_PREFIX}\d+_[^_]+_[^_]+_soft\.csv")


def should_dump(train_accuracy: float, train_loss: float, last_dump_loss: float | None, threshold: float) -> bool:
    """The original contest code's rule: a good epoch (train accuracy at the threshold) that improves on the last
    kept one."""
    return train_accuracy >= threshold and (last_dump_loss is None or train_loss < last_dump_loss)


def soft_csv_names(epoch: int, train_accuracy: float, train_loss: float, tag: str = "") -> tuple[str, str]:
    """(eval CSV, validation CSV) file names, after the original contest code's. A re-prediction's tag ('-pred1')
    follows the loss: no underscore, so the ensemble's pattern still reads the name."""
    tail = f"{epoch}_{train_accuracy:.4f}_{train_loss:.4f}{tag}_soft.csv"
    return f"{EVAL_PREFIX}{tail}", f"{VALID_PREFIX}{tail}"


def valid_name(eval_name: str) -> str | None:
    """The validation partner of an eval soft CSV's name (None when the name is not one)."""
    if not eval_name.startswith(EVAL_PREFIX):
        return None
    return VALID_PREFIX + eval_name[len(EVAL_PREFIX):]


def soft_frame(image_ids: list[str], probs: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    """ImageID, [label,] then one probability column per class named 0..K-1."""
    columns = {"ImageID": image_ids}
    if labels is not None:
        columns["label"] = np.asarray(labels, dtype=np.int64)
    frame = pd.DataFrame(columns)
    class_columns = pd.DataFrame(probs, columns=[str(k) for k in range(probs.shape[1])])
    return pd.concat([frame, class_columns], axis=1)


def _joint_heads(heads: Mapping[str, int]) -> None:
    if set(heads) != {"mask", "gender", "age"}:
        raise ValueError(f"a soft CSV joins the heads mask, gender and age, not {', '.join(heads)}")


def csv_probs(probs: Mapping[str, np.ndarray], heads: Mapping[str, int]) -> np.ndarray:
    """The probability columns of a run's soft CSV: its one head's, or for the mask, gender and age heads of a
    'multihead' model the 18-class outer product (harness.data.labels.joint_probs says why)."""
    if len(heads) == 1:
        return probs[next(iter(heads))]
    _joint_heads(heads)
    return joint_probs(probs["mask"], probs["gender"], probs["age"])


def csv_labels(labels: np.ndarray, heads: Mapping[str, int]) -> np.ndarray:
    """The label column of a validation CSV from [N, heads] labels: the one head's, or the 18-class multi label."""
    labels = labels[:, None] if labels.ndim == 1 else labels
    if len(heads) == 1:
        return labels[:, 0]
    _joint_heads(heads)
    column = {task: labels[:, h] for h, task in enumerate(heads)}
    return multi_label(column["mask"], column["gender"], column["age"])
