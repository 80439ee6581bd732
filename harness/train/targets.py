"""What a run learns from beyond each training image's true label:

- soft targets (`--soft_targets CSV --soft_weight W`): self-distillation. Every training image's target is
  (1 - W) * its true label + W * the CSV's probabilities for it (Plant Pathology 2020's 1st place blended
  out-of-fold predictions with the labels 3:7, W = 0.3). The CSV is a validation soft CSV that covers every
  training image: the out-of-fold CSV of a K-fold run, or a blend of several (distill.py makes one).
- pseudo-labels (`--pseudo_labels CSV --pseudo_threshold T [--pseudo_soft true]`): the eval images whose
  ensemble probability reaches T in every head join the training draw (never validation), with the CSV's most
  probable class as their label, or with its probabilities as a soft target. The CSV is an eval soft CSV, e.g.
  the `<output>_<task>_soft.csv` that `python -m ensemble` writes beside its submission.

A CSV of 18 classes serves a mask, gender or age head through that task's marginal probabilities. Everything is
read and checked before the run folder is made."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data.labels import TASKS, task_marginal
from harness.errors import UserError
from harness.outputs.soft_csv import SoftCsv, read_soft_csv

log = logging.getLogger("trial")
Heads = Mapping[str, int]


def blend_targets(labels: np.ndarray, soft: np.ndarray, weight: float) -> np.ndarray:
    """[N, K]: (1 - weight) * one-hot(labels) + weight * soft."""
    return (1 - weight) * np.eye(soft.shape[1])[labels] + weight * soft


def head_probabilities(probs: np.ndarray, heads: Heads, path: Path) -> dict[str, np.ndarray]:
    """A soft CSV's [N, K] probabilities as each head's: its own columns when the head has K classes, the task's
    marginals when the CSV holds the mask contest's 18 classes; anything else is a UserError naming the file."""
    found = {}
    for task, classes in heads.items():
        if probs.shape[1] == classes:
            found[task] = probs
        elif probs.shape[1] == TASKS["multi"] and task in ("mask", "gender", "age"):
            found[task] = task_marginal(probs, task)
        else:
            raise UserError(f"{path}: {probs.shape[1]} class columns cannot give the {task} head's {classes} classes "
                            f"(expected {classes}, or the mask contest's 18)")
    return found


def aligned_rows(soft: SoftCsv, ids: list[str], what: str) -> np.ndarray:
    """The CSV's probability rows in the order of `ids`, every one of which it must hold."""
    import pandas as pd  # here, not at the top: a trial without soft targets or pseudo-labels never imports pandas

    missing = pd.Index(ids).difference(soft.ids)
    if len(missing):
        raise UserError(f"{soft.path}: no row for {len(missing)} of the {len(ids)} {what} (e.g. {missing[0]!r}): "
                        f"expected a row per {what.rstrip('s')}")
    return soft.probs[soft.ids.get_indexer(ids)]


def confident(heads_probs: Mapping[str, np.ndarray], threshold: float) -> np.ndarray:
    """Positions whose most probable class reaches `threshold` in every head."""
    return np.flatnonzero(np.all([p.max(1) >= threshold for p in heads_probs.values()], axis=0))


def file_digest(path: Path) -> str:
    """A short content hash, recorded in params.json: a resume with a changed CSV is refused."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


@dataclass
class TrainingTargets:
    """The added images and the soft-target table of a run (None fields: not used)."""
    added: np.ndarray                        # eval positions added to the training draw
    added_labels: np.ndarray                 # [len(added), heads]
    soft: dict[str, np.ndarray] | None       # task -> [train images + eval images, K] target rows
    summary: dict[str, Any]                  # what params.json and the log say about them

    def batch_targets(self, device: torch.device) -> SoftTargets | None:
        return SoftTargets({task: torch.as_tensor(rows, dtype=torch.float32, device=device)
                            for task, rows in self.soft.items()}) if self.soft is not None else None


class SoftTargets:
    """A batch's probability targets per head, looked up by each image's index (the labels' last column, see
    harness.data.batches.ImageSet with_index); MixUp/CutMix, when on, then mixes these probabilities."""

    def __init__(self, table: dict[str, torch.Tensor], mixer: Any = None) -> None:
        self.table, self.mixer = table, mixer

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows = labels[:, -1]
        targets = {task: table[rows] for task, table in self.table.items()}
        return self.mixer.mix_probabilities(images, targets) if self.mixer is not None else (images, targets)


def training_targets(params: Any, train_set: Any, eval_set: Any, heads: Heads,
                     train_labels: np.ndarray) -> TrainingTargets | None:
    """The run's soft targets and pseudo-labels from --soft_targets and --pseudo_labels; None when neither."""
    if not params.soft_targets and not params.pseudo_labels:
        return None
    images = len(train_set.paths) + (len(eval_set.image_ids) if eval_set is not None else 0)
    added, added_labels, added_probs = np.zeros(0, np.int64), np.zeros((0, len(heads)), np.int64), None
    summary: dict[str, Any] = {}
    if params.pseudo_labels:
        added, added_labels, added_probs, summary["pseudo_labels"] = pseudo_labels(params, eval_set, heads)
    soft = None
    if params.soft_targets or (params.pseudo_labels and params.pseudo_soft):
        soft = {task: np.zeros((images, classes)) for task, classes in heads.items()}
        for h, (task, classes) in enumerate(heads.items()):
            soft[task][:len(train_set.paths)] = np.eye(classes)[train_labels[:, h]]
            if added_probs is not None:
                soft[task][len(train_set.paths) + added] = (added_probs[task] if params.pseudo_soft
                                                            else np.eye(classes)[added_labels[:, h]])
    if params.soft_targets:
        summary["soft_targets"] = distilled(params, train_set, heads, train_labels, soft)
    return TrainingTargets(added, added_labels, soft, summary)


def distilled(params: Any, train_set: Any, heads: Heads, train_labels: np.ndarray,
              soft: dict[str, np.ndarray]) -> dict[str, Any]:
    """Blends --soft_targets into the training images' rows of `soft`; returns what params.json records."""
    path = Path(params.soft_targets)
    probs = head_probabilities(aligned_rows(read_soft_csv(path), train_set.paths, "training images"), heads, path)
    for h, task in enumerate(heads):
        soft[task][:len(train_set.paths)] = blend_targets(train_labels[:, h], probs[task], params.soft_weight)
    log.info("soft targets: every training image's label blended %.2f:%.2f with %s", 1 - params.soft_weight,
             params.soft_weight, path)
    return {"path": str(path), "sha1": file_digest(path), "weight": params.soft_weight}


def pseudo_labels(params: Any, eval_set: Any, heads: Heads
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """(eval positions, their labels [P, heads], their probabilities per head, what params.json records)."""
    path = Path(params.pseudo_labels)
    if eval_set is None:
        raise UserError(f"--pseudo_labels {path}: the data set has no eval/ images to label")
    probs = head_probabilities(aligned_rows(read_soft_csv(path), eval_set.image_ids, "eval images"), heads, path)
    added = confident(probs, params.pseudo_threshold)
    labels = np.stack([probs[task][added].argmax(1) for task in heads], axis=1).astype(np.int64)
    per_class = {task: np.bincount(labels[:, h], minlength=classes).tolist()
                 for h, (task, classes) in enumerate(heads.items())}
    log.info("pseudo-labels: %d of %d eval images reach %.2f in every head (%s labels); per class: %s", len(added),
             len(eval_set.image_ids), params.pseudo_threshold, "soft" if params.pseudo_soft else "hard", per_class)
    summary = {"path": str(path), "sha1": file_digest(path), "threshold": params.pseudo_threshold,
               "soft": params.pseudo_soft, "added": int(len(added)), "per_class": per_class}
    return added, labels, {task: p[added] for task, p in probs.items()}, summary
