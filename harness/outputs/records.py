"""What a trial records per epoch and what it tells NNI, as pure functions of the epoch's numbers."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.metrics import accuracy, macro_f1
from harness.outputs.soft_csv import csv_labels, csv_probs

if TYPE_CHECKING:
    from harness.train.passes import Prediction, TrainResult


def epoch_record(epoch: int, train: TrainResult, val: Prediction | None, val_labels: np.ndarray,
                 heads: Mapping[str, int], lr: float) -> dict[str, Any]:
    """One line of metrics.jsonl (seconds and dumped are added once the epoch's dump is done).

    val_labels: [N, heads]; val_scores says what is scored with several heads."""
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
    """val_loss, val_acc and val_f1 of what the run's soft CSVs hold. With the mask, gender and age heads of a
    'multihead' model those are the 18-class scores (the heads' joint prediction, comparable with a 'multi' trial's
    under one tuner), and each head's val_acc_<task> and val_f1_<task> are recorded too."""
    labels = val_labels[:, None] if val_labels.ndim == 1 else val_labels
    probs, truth = csv_probs(val.probs, heads), csv_labels(labels, heads)
    predicted = probs.argmax(1)
    result = {"val_loss": val.loss, "val_acc": accuracy(truth, predicted),
              "val_f1": macro_f1(truth, predicted, probs.shape[1])}
    if len(heads) > 1:
        for h, (task, classes) in enumerate(heads.items()):
            result.update({f"val_acc_{task}": val.accuracy[task],
                           f"val_f1_{task}": macro_f1(labels[:, h], val.probs[task].argmax(1), classes)})
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
