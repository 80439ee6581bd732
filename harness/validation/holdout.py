"""The holdout scheme: one split, by person (or image), seeded and stratified (harness/data/split.py); a kept epoch
writes its soft-CSV pair, the validation CSV first."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from harness.data.split import check_training_images, split_indices
from harness.fit.hooks import Epoch, Hook
from harness.fit.setup import Split, TrialData
from harness.outputs.reading import best_record
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import SoftTable, csv_labels, csv_probs
from harness.params import TrialParams


def holdout_split(params: TrialParams, data: TrialData) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) image indices of --val_ratio and --seed: the same people for every task."""
    train_set = data.train_set
    return split_indices(train_set.groups, train_set.group_strata, params.val_ratio, params.seed)


class Holdout:
    name = "holdout"

    def __init__(self, params: TrialParams, data: TrialData, run: RunFolder) -> None:
        self.params, self.data, self.run = params, data, run
        self.steps = params.epochs
        self.train_idx, self.val_idx = holdout_split(params, data)
        check_training_images(len(self.train_idx), len(data.train_set.paths),
                              f"--val_ratio {params.val_ratio:g} (split by "
                              f"{'person' if data.train_set.layout == 'mask contest' else 'image'})")
        self.has_validation = len(self.val_idx) > 0

    def describe(self) -> dict[str, Any]:
        return {"scheme": "holdout", "val_ratio": self.params.val_ratio, "seed": self.params.seed}

    def splits(self, done: int) -> Iterator[Split]:
        yield Split(1, self.train_idx, self.val_idx, offset=0, first_epoch=done + 1)

    def writer(self) -> Hook:
        return HoldoutWriter(self.run)

    def discard_unrecorded(self, done: int) -> list[str]:
        """Soft CSVs of epochs after the `done` ones on record (a kill between a dump and its checkpoint)."""
        return self.run.remove_dumps_after(done)

    def finish(self, records: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
        return best_record(records, key)

    partial = finish  # a diverged run still reports its best epoch so far


class HoldoutWriter(Hook):
    """A kept epoch's soft CSVs: the eval set is predicted only then (nothing else reads it), by the same predictor
    as the validation CSV beside it."""
    name = "writer"

    def __init__(self, run: RunFolder) -> None:
        self.run = run

    def after_epoch(self, epoch: Epoch) -> None:
        if not epoch.dump:
            return
        fit = self.loop.fit
        heads, loaders = fit.heads, fit.loaders
        evaluation = fit.predictor(loaders.eval) if loaders.eval else None
        val = SoftTable(loaders.val_ids, csv_probs(epoch.val.probs, heads), csv_labels(loaders.val_labels, heads)) \
            if epoch.val else None
        with self.loop.stop.protect():
            self.run.write_soft_csvs(epoch.number, epoch.train.accuracy, epoch.train.loss, val,
                                     SoftTable(loaders.eval_ids, csv_probs(evaluation.probs, heads))
                                     if evaluation else None)
