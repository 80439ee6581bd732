"""What a trial records per epoch and what it tells NNI, as pure functions of the epoch's numbers."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from harness.metrics import macro_f1
from harness.train.passes import Prediction, TrainResult


def epoch_record(epoch: int, train: TrainResult, val: Prediction | None, val_labels: np.ndarray,
                 heads: Mapping[str, int], lr: float) -> dict[str, Any]:
    """One line of metrics.jsonl (seconds and dumped are added once the epoch's dump is done).

    val_labels: [N, heads]. With several heads, each head's val_acc_<task> and val_f1_<task> are recorded too,
    and val_acc / val_f1 are their means."""
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": train.loss,
        "train_acc": train.accuracy,
        "val_loss": None, "val_acc": None, "val_f1": None,
        "lr": lr,
        "train_images_per_s": train.images / train.seconds if train.seconds > 0 else None,
    }
    if val is not None:
        record.update(val_scores(val, val_labels, heads))
    return record


def val_scores(val: Prediction, val_labels: np.ndarray, heads: Mapping[str, int]) -> dict[str, float]:
    """val_loss, val_acc and val_f1 (with several heads, their means, and each head's val_acc_<task> and
    val_f1_<task>)."""
    labels = val_labels[:, None] if val_labels.ndim == 1 else val_labels
    scores = {task: (val.accuracy[task], macro_f1(labels[:, h], val.probs[task].argmax(1), classes))
              for h, (task, classes) in enumerate(heads.items())}
    result = {"val_loss": val.loss, "val_acc": float(np.mean([acc for acc, _ in scores.values()])),
              "val_f1": float(np.mean([f1 for _, f1 in scores.values()]))}
    if len(heads) > 1:
        for task, (acc, f1) in scores.items():
            result.update({f"val_acc_{task}": acc, f"val_f1_{task}": f1})
    return result


def raw_scores(val: Prediction, val_labels: np.ndarray, heads: Mapping[str, int]) -> dict[str, float]:
    """With --ema_decay the val_* scores are the averaged weights' (what is dumped); these raw_val_* are the
    trained weights' own, for comparison."""
    return {f"raw_{key}": value for key, value in val_scores(val, val_labels, heads).items()}


def default_key(metric: str, has_validation: bool) -> str:
    """The number NNI's tuner maximises: the chosen validation metric, or train accuracy with no validation."""
    return metric if has_validation else "train_acc"


def nni_metric(record: dict[str, Any], key: str, reserved: Collection[str] = ()) -> dict[str, Any]:
    """NNI's dict metric: 'default' for the tuner and assessor, the other numbers for the web UI.

    A number named like a search-space key (`reserved`: the trial's flags) is sent as epoch_<name>: NNI's export
    and the web UI's hyper-parameter view merge metric keys over the trial's parameters, so the epoch's scheduled
    `lr` would otherwise be shown as the lr the tuner chose."""
    extra = {f"epoch_{name}" if name in reserved else name: value for name, value in record.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {"default": record[key], **extra}


def best_record(records: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The epoch with the highest `key` (the earliest on ties); None before the first epoch."""
    return max(records, key=lambda record: record[key]) if records else None
