"""K-fold inside one trial (`--folds K`): how its steps are numbered, which epochs become soft CSVs, and the
out-of-fold (OOF) CSVs and cross-validated scores assembled once every fold has trained.

The scheme (README: "K-fold and multi-head models"):
- fold f (1..K) trains epochs 1..E on the other folds' people and predicts its own held-out people every epoch;
  NNI gets one intermediate result per epoch of each fold, numbered globally: step = (f - 1) * E + e.
- every step's held-out predictions are kept in <run>/folds/ (one file per step, written whole); the eval set is
  predicted only at steps that can still become a dump (see keeps_eval).
- the dump rule runs per fold on that fold's own epochs; epoch index e is dumped when it passed the rule in every
  fold. A dump is one CSV pair: valid{e}_... holds every training image's OOF prediction (from the fold that held it
  out, at epoch e), submission{e}_... the folds' average on the eval set; accuracy and loss in the names are the
  folds' means.
- the cross-validated scores of epoch index e are those of its OOF predictions on all training images; the final
  result to NNI is the best epoch index's (kfold.json holds them all).
Nothing is written into the run folder's CSVs before the last fold ends, so a trial killed mid-K-fold leaves no
half CSV; its folds/ files and last.pt let it resume."""
from __future__ import annotations

import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_path, write_json
from harness.data.labels import split_multi
from harness.data.split import FOLD_SEED
from harness.metrics import accuracy, macro_f1
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import csv_labels

PARTS, SUMMARY = "folds", "kfold.json"


def validation_scheme(folds: int, val_ratio: float, seed: int) -> dict[str, Any]:
    """What params.json records as the run's validation images: the ensemble's --select compares members only
    when these image sets agree."""
    if folds > 1:
        return {"scheme": "kfold", "folds": folds, "fold_seed": FOLD_SEED}
    return {"scheme": "holdout", "val_ratio": val_ratio, "seed": seed}


def step_number(fold: int, fold_epoch: int, epochs: int) -> int:
    """The global step NNI and metrics.jsonl see for epoch `fold_epoch` of fold `fold` (both from 1)."""
    return (fold - 1) * epochs + fold_epoch


def resume_point(completed_steps: int, epochs: int) -> tuple[int, int]:
    """(fold to run, its first epoch), both from 1, after `completed_steps` steps of last.pt."""
    return completed_steps // epochs + 1, completed_steps % epochs + 1


def fold_candidates(records: Sequence[Mapping[str, Any]]) -> dict[int, set[int]]:
    """fold -> the epochs that passed the dump rule in that fold (its records' fold_dump)."""
    candidates: dict[int, set[int]] = {}
    for record in records:
        if "fold" in record:
            candidates.setdefault(record["fold"], set())
            if record["fold_dump"]:
                candidates[record["fold"]].add(record["fold_epoch"])
    return candidates


def keeps_eval(fold: int, fold_epoch: int, passed: bool, candidates: Mapping[int, Collection[int]]) -> bool:
    """Whether this step's eval predictions are worth computing: only an epoch that passed the rule in this fold
    and in every earlier one can still be dumped."""
    return passed and all(fold_epoch in candidates.get(earlier, ()) for earlier in range(1, fold))


def dump_epochs(candidates: Mapping[int, Collection[int]], folds: int) -> list[int]:
    """The epoch indices dumped as OOF CSV pairs: those that passed the dump rule in every one of the folds."""
    common = set(candidates.get(1, ()))
    for fold in range(2, folds + 1):
        common &= set(candidates.get(fold, ()))
    return sorted(common)


def out_of_fold(parts: Sequence[tuple[np.ndarray, np.ndarray]], images: int) -> np.ndarray:
    """[images, K] from each fold's (held-out image indices, probabilities): every image exactly once."""
    covered = np.zeros(images, dtype=np.int64)
    for indices, _ in parts:
        np.add.at(covered, indices, 1)
    if not (covered == 1).all():
        raise RuntimeError(f"out-of-fold predictions cover {int((covered == 1).sum())} of {images} images once")
    oof = np.empty((images, parts[0][1].shape[1]))
    for indices, probs in parts:
        oof[indices] = probs
    return oof


def task_marginal(probs: np.ndarray, task: str) -> np.ndarray:
    """P(task = j) of 18-class probabilities (multi = mask*6 + gender*3 + age)."""
    position = {"mask": 0, "gender": 1, "age": 2}[task]
    of_class = split_multi(np.arange(probs.shape[1]))[position]
    return probs @ np.eye(int(of_class.max()) + 1)[of_class]


def cv_scores(oof: np.ndarray, labels: np.ndarray, heads: Mapping[str, int]) -> dict[str, float]:
    """val_acc and val_f1 of the OOF predictions (what the valid CSV holds); with several heads each head's
    val_acc_<task> and val_f1_<task> too, from the 18-class marginals (equal to the heads' own argmaxes)."""
    labels = labels[:, None] if labels.ndim == 1 else labels
    truth, predicted = csv_labels(labels, heads), oof.argmax(1)
    scores = {"val_acc": accuracy(truth, predicted), "val_f1": macro_f1(truth, predicted, oof.shape[1])}
    if len(heads) > 1:
        for h, (task, classes) in enumerate(heads.items()):
            head = task_marginal(oof, task).argmax(1)
            scores.update({f"val_acc_{task}": accuracy(labels[:, h], head),
                           f"val_f1_{task}": macro_f1(labels[:, h], head, classes)})
    return scores


class FoldParts:
    """<run>/folds/fold{f}_epoch{e}.npz: one step's held-out indices and probabilities (and eval probabilities
    when kept), each file written whole."""

    def __init__(self, run_path: Path) -> None:
        self.folder = Path(run_path) / PARTS

    def path(self, fold: int, fold_epoch: int) -> Path:
        return self.folder / f"fold{fold}_epoch{fold_epoch}.npz"

    def write(self, fold: int, fold_epoch: int, val_idx: np.ndarray, val_probs: np.ndarray,
              eval_probs: np.ndarray | None) -> None:
        arrays = {"val_idx": val_idx, "val_probs": val_probs.astype(np.float32)}
        if eval_probs is not None:
            arrays["eval_probs"] = eval_probs.astype(np.float32)
        with atomic_path(self.path(fold, fold_epoch)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    def read(self, fold: int, fold_epoch: int) -> dict[str, np.ndarray]:
        with np.load(self.path(fold, fold_epoch)) as data:
            return {key: data[key] for key in data.files}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class FoldRun:
    """The fold trial.py's train() is running: its number (from 1), the steps before it, its held-out images, where
    its steps' predictions go, and last.pt's contents when this fold is being resumed mid-way."""

    number: int
    offset: int
    val_idx: np.ndarray
    parts: FoldParts
    resumed: dict[str, Any] | None = None


def fold_record(step: Mapping[str, Any], fold: int, fold_epoch: int, passed: bool) -> dict[str, Any]:
    """A step's metrics.jsonl line: the fold's epoch record, which fold and epoch it is, and whether that epoch
    passed the dump rule in its fold. 'dumped' stays False: only the assembled OOF pair is ever written."""
    return {**step, "fold": fold, "fold_epoch": fold_epoch, "fold_dump": passed, "dumped": False}


def assemble(run: RunFolder, parts: FoldParts, records: Sequence[Mapping[str, Any]], folds: int, epochs: int,
             labels: np.ndarray, heads: Mapping[str, int], train_ids: list[str], eval_ids: list[str],
             has_eval: bool) -> list[dict[str, Any]]:
    """After the last fold: one cross-validated record per epoch index, and the OOF CSV pair of every dumped
    epoch (the validation CSV first, as for a holdout run). Returns the records; kfold.json holds them too."""
    by_step = {(r["fold"], r["fold_epoch"]): r for r in records if "fold" in r}
    dumped = set(dump_epochs(fold_candidates(records), folds))
    cv = []
    for epoch in range(1, epochs + 1):
        steps = [by_step[fold, epoch] for fold in range(1, folds + 1)]
        read = [parts.read(fold, epoch) for fold in range(1, folds + 1)]
        oof = out_of_fold([(part["val_idx"], part["val_probs"].astype(np.float64)) for part in read], len(train_ids))
        oof /= oof.sum(1, keepdims=True)  # float32 storage: rows back to exactly 1
        sizes = np.array([len(part["val_idx"]) for part in read])
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(np.mean([s["train_loss"] for s in steps])),
            "train_acc": float(np.mean([s["train_acc"] for s in steps])),
            "val_loss": float(np.average([s["val_loss"] for s in steps], weights=sizes)),
            **cv_scores(oof, labels, heads), "dumped": epoch in dumped}
        if epoch in dumped:
            evaluation = np.mean([part["eval_probs"].astype(np.float64) for part in read], axis=0) \
                if has_eval else None
            run.write_soft_csvs(epoch, record["train_acc"], record["train_loss"], eval_ids, evaluation,
                                train_ids, csv_labels(labels, heads), oof)
        cv.append(record)
    return cv


def write_summary(run_path: Path, folds: int, fold_of: np.ndarray, cv: list[dict[str, Any]],
                  best: Mapping[str, Any] | None) -> None:
    write_json({"folds": folds, "fold_seed": FOLD_SEED, "images_per_fold": np.bincount(fold_of).tolist(),
                "best_epoch": best["epoch"] if best else None, "epochs": cv}, Path(run_path) / SUMMARY)
