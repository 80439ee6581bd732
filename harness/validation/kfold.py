"""K-fold inside one trial (`--folds K`): K person-grouped, stratified folds (fixed fold seed) trained one after
another; each step's held-out predictions wait in <run>/folds/, and once the last fold ends the out-of-fold (OOF)
CSVs and the cross-validated records are assembled. docs/techniques.md describes the scheme and its numbering.

In short: NNI gets one result per epoch of each fold (step = (fold - 1) * epochs + epoch); the dump rule runs per
fold, and epoch e is dumped when it passed the rule in every fold, as one pair: valid{e}_... with every training
image's OOF prediction, submission{e}_... with the folds' average on the eval set. Nothing is written into the run
folder's CSVs before the last fold ends, so a trial killed mid-K-fold leaves no half CSV; folds/ and last.pt let it
resume."""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_path, write_json
from harness.data.labels import task_marginal
from harness.data.split import FOLD_SEED, assign_folds, check_training_images, fold_indices
from harness.errors import UserError
from harness.fit.hooks import Epoch, Hook
from harness.fit.setup import Split, TrialData
from harness.metrics import accuracy, macro_f1
from harness.outputs.reading import best_record, json_object
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import SoftTable, csv_labels, csv_probs
from harness.params import TrialParams

log = logging.getLogger("trial")

PARTS, SUMMARY = "folds", "kfold.json"


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
        """Renamed out of the way first (atomic), then deleted: a kill mid-delete leaves no half folds/ that a
        resume would try to assemble from (kfold.json is written before this)."""
        trash = self.folder.with_name(f".{PARTS}.removing")
        shutil.rmtree(trash, ignore_errors=True)
        if self.folder.is_dir():
            os.replace(self.folder, trash)
        shutil.rmtree(trash, ignore_errors=True)


class KFold:
    name = "kfold"

    def __init__(self, params: TrialParams, data: TrialData, run: RunFolder) -> None:
        self.params, self.data, self.run = params, data, run
        self.folds, self.epochs = params.folds, params.epochs
        self.steps = self.folds * self.epochs  # one NNI step per epoch of each fold
        self.has_validation = True
        self.parts = FoldParts(run.path)
        train_set = data.train_set
        # Stratified on the 18-class label (a single-label data set's own label): the same people per fold for
        # every task.
        self.fold_of = assign_folds(train_set.groups, train_set.task_labels("multi"), self.folds)
        check_training_images(len(self.fold_of) - int(np.bincount(self.fold_of).max()), len(self.fold_of),
                              f"--folds {self.folds} (its largest held-out fold)")

    def describe(self) -> dict[str, Any]:
        return {"scheme": "kfold", "folds": self.folds, "fold_seed": FOLD_SEED}

    def splits(self, done: int) -> Iterator[Split]:
        first_fold, first_epoch = resume_point(done, self.epochs)
        for fold in range(first_fold, self.folds + 1):
            train_idx, val_idx = fold_indices(self.fold_of, fold - 1)
            yield Split(fold, train_idx, val_idx, offset=step_number(fold, 0, self.epochs),
                        first_epoch=first_epoch if fold == first_fold else 1)

    def writer(self) -> Hook:
        return KFoldWriter(self.parts, self.folds)

    def discard_unrecorded(self, done: int) -> list[str]:
        """The OOF CSVs exist only once every fold has run: before that, any are an earlier attempt's."""
        return self.run.remove_dumps_after(0) if done < self.steps else []

    def finish(self, records: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
        """The OOF CSVs and cross-validated records (kfold.json); the best of those is the final result. A finished
        run resumed again has no folds/ left: kfold.json has its records."""
        if self.parts.folder.is_dir():
            cv = self.cross_validated(records)
        elif (self.run.path / SUMMARY).is_file():
            cv = json_object(self.run.path / SUMMARY, SUMMARY).get("epochs")
        else:
            raise UserError(f"{self.run.path} has neither {PARTS}/ nor {SUMMARY}: its folds' predictions are gone, "
                            f"so the K-fold run cannot be completed; start it again")
        best = best_record(cv, key)
        write_json({"folds": self.folds, "fold_seed": FOLD_SEED, "images_per_fold": np.bincount(self.fold_of).tolist(),
                    "best_epoch": best["epoch"] if best else None, "epochs": cv}, self.run.path / SUMMARY)
        self.parts.remove()
        log.info("cross-validated (%d folds): %s", self.folds, ", ".join(
            f"epoch {r['epoch']} {key} {r[key]:.4f}{' (dumped)' if r['dumped'] else ''}" for r in cv))
        return best

    def partial(self, records: list[dict[str, Any]], key: str) -> None:
        """No cross-validated result without every fold."""
        return None

    def cross_validated(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One cross-validated record per epoch index, and the OOF CSV pair of every dumped epoch."""
        dumped = set(dump_epochs(fold_candidates(records), self.folds))
        return [self.epoch_index(epoch, records, epoch in dumped) for epoch in range(1, self.epochs + 1)]

    def epoch_index(self, epoch: int, records: Sequence[Mapping[str, Any]], dumped: bool) -> dict[str, Any]:
        """Epoch `epoch` of every fold as one record; its CSV pair when dumped (the validation CSV first)."""
        by_step = {(r["fold"], r["fold_epoch"]): r for r in records if "fold" in r}
        steps = [by_step[fold, epoch] for fold in range(1, self.folds + 1)]
        read = [self.parts.read(fold, epoch) for fold in range(1, self.folds + 1)]
        train_ids, heads, labels = self.data.train_set.paths, self.data.heads, self.data.labels
        oof = out_of_fold([(part["val_idx"], part["val_probs"].astype(np.float64)) for part in read], len(train_ids))
        oof /= oof.sum(1, keepdims=True)  # float32 storage: rows back to exactly 1
        sizes = np.array([len(part["val_idx"]) for part in read])
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(np.mean([s["train_loss"] for s in steps])),
            "train_acc": float(np.mean([s["train_acc"] for s in steps])),
            "val_loss": float(np.average([s["val_loss"] for s in steps], weights=sizes)),
            **cv_scores(oof, labels, heads), "dumped": dumped}
        if dumped:
            eval_set = self.data.eval_set
            evaluation = SoftTable(eval_set.image_ids, np.mean(
                [part["eval_probs"].astype(np.float64) for part in read], axis=0)) if eval_set else None
            self.run.write_soft_csvs(epoch, record["train_acc"], record["train_loss"],
                                     SoftTable(train_ids, oof, csv_labels(labels, heads)), evaluation)
        return record


class KFoldWriter(Hook):
    """A step's held-out predictions (and, while the epoch can still be dumped, its eval predictions) into folds/;
    the record says which fold and epoch it is and whether that epoch passed the dump rule in its fold. Nothing is
    dumped before the folds are assembled."""
    name = "writer"

    def __init__(self, parts: FoldParts, folds: int) -> None:
        self.parts, self.folds = parts, folds

    def before_split(self) -> None:
        split = self.loop.fit.split
        log.info("fold %d/%d: %d training and %d held-out images", split.number, self.folds, len(split.train_idx),
                 len(split.val_idx))

    def after_epoch(self, epoch: Epoch) -> None:
        fit = self.loop.fit
        fold = fit.split.number
        keep = keeps_eval(fold, epoch.number, epoch.dump, fold_candidates(self.loop.records))
        evaluation = fit.predictor(fit.loaders.eval) if keep and fit.loaders.eval else None
        with self.loop.stop.protect():
            self.parts.write(fold, epoch.number, fit.split.val_idx, csv_probs(epoch.val.probs, fit.heads),
                             csv_probs(evaluation.probs, fit.heads) if evaluation else None)
        epoch.record.update(fold=fold, fold_epoch=epoch.number, fold_dump=epoch.dump)
        epoch.dump = False
