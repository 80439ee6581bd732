"""What a trial records per epoch and what it tells NNI, as pure functions of the epoch's numbers."""
from __future__ import annotations

from typing import Any

from harness.metrics import macro_f1
from harness.training import Prediction, TrainResult


def epoch_record(epoch: int, train: TrainResult, val: Prediction | None, val_labels, num_classes: int,
                 lr: float) -> dict[str, Any]:
    """One line of metrics.jsonl (seconds and dumped are added once the epoch's dump is done)."""
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": train.loss,
        "train_acc": train.accuracy,
        "val_loss": None, "val_acc": None, "val_f1": None,
        "lr": lr,
        "train_images_per_s": train.images / train.seconds if train.seconds > 0 else None,
    }
    if val is not None:
        record.update(val_loss=val.loss, val_acc=val.accuracy,
                      val_f1=macro_f1(val_labels, val.probs.argmax(1), num_classes))
    return record


def default_key(metric: str, has_validation: bool) -> str:
    """The number NNI's tuner maximises: the chosen validation metric, or train accuracy with no validation."""
    return metric if has_validation else "train_acc"


def nni_metric(record: dict[str, Any], key: str) -> dict[str, Any]:
    """NNI's dict metric: 'default' for the tuner and assessor, the other numbers for the web UI."""
    extra = {name: value for name, value in record.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {"default": record[key], **extra}


def best_record(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The epoch with the highest `key` (the earliest on ties)."""
    return max(records, key=lambda record: record[key])
