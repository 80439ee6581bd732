"""Refit (`trial.py --refit RUN_DIR`): a finished run's configuration trained again on every training image, for
the epochs its validation chose, as Cassava Leaf Disease's 1st place trained its final models.

The epochs: the source run's best dumped epoch by its metric (holdout: metrics.jsonl; K-fold: kfold.json's
cross-validated epochs), so that the refit has a validation CSV the ensemble can select it by: the source's CSV
of that epoch, copied beside the refit's eval CSV under the refit's names (the refit model itself trained on those
images, so its own predictions of them would tell nothing). The refit's run folder is the source's name plus
"_refit", in the source's experiment folder; `python -m ensemble --refit replace` (the default) then uses the
refit's eval CSV in place of the source's for that epoch."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_path
from harness.errors import UserError
from harness.fit.hooks import Epoch, Hook
from harness.fit.resume import recorded_params
from harness.fit.setup import Split, TrialData
from harness.outputs.reading import PARAMS, Run, best_record, json_object, read_run
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import SoftTable, csv_probs, soft_csv_names
from harness.params import TrialParams

SUFFIX = "_refit"


def chosen_epoch(source: Run) -> tuple[int, str]:
    """(the epoch count validation chose, the source's validation CSV of that epoch): its best dumped epoch."""
    kfold = source.params.get("folds", 1) > 1
    records = json_object(source.folder / "kfold.json", "kfold.json").get("epochs") if kfold else source.records
    if not isinstance(records, list | tuple):
        raise UserError(f"{source.folder}: its kfold.json holds no cross-validated epochs (did the run finish?)")
    key = str(source.params.get("metric", "val_acc"))
    best = best_record([r for r in records if isinstance(r, dict) and r.get("dumped")], key)
    valid = {dump.epoch: dump.valid_csv for dump in source.dumps if not dump.tag and dump.valid_csv}
    if best is None or best["epoch"] not in valid:
        raise UserError(f"{source.folder}: no dumped epoch with a validation CSV and a {key} to choose the refit's "
                        f"epochs by (train the run with --dump_rule either, or lower --dump_threshold)")
    return int(best["epoch"]), valid[best["epoch"]]


def refit_params(source_dir: str) -> TrialParams:
    """The source's parameters with every training image in training (no validation), one split, the chosen
    epochs, and `refit` naming the source; refused for a run that was itself a refit or a PBT step."""
    source = read_run(Path(source_dir))
    if source.params.get("refit"):
        raise UserError(f"--refit {source_dir}: this run is itself a refit; give the run it was refit from")
    if source.params.get("load_checkpoint_dir") or source.params.get("save_checkpoint_dir"):
        raise UserError(f"--refit {source_dir}: a PBT step's weights come from its parent, a refit cannot redo that")
    epochs, _ = chosen_epoch(source)
    return recorded_params(source.params, source.folder, refit=str(source.folder.resolve()), epochs=epochs,
                           val_ratio=0.0, folds=1, resume="", checkpoint="last")


def refit_folder(params: TrialParams) -> tuple[RunFolder, str, str]:
    """(the refit's run folder beside its source's, the source's experiment id, the refit's trial id)."""
    source = Path(params.refit)
    recorded = json_object(source / PARAMS, PARAMS)
    folder = source.with_name(source.name + SUFFIX)
    if (folder / "last.pt").exists():
        raise UserError(f"{folder} exists: the run was refit already (`python trial.py --resume {folder}` continues "
                        f"an unfinished refit)")
    trial_id = f"{recorded.get('trial_id') or source.name}{SUFFIX.replace('_', '-')}"
    return RunFolder.at(folder), str(recorded.get("experiment_id", source.parent.name)), trial_id


class Refit:
    name = "refit"

    def __init__(self, params: TrialParams, data: TrialData, run: RunFolder) -> None:
        self.params, self.data, self.run = params, data, run
        self.source = read_run(Path(params.refit))
        self.epoch, self.valid_csv = chosen_epoch(self.source)
        self.steps, self.has_validation = params.epochs, False

    def describe(self) -> dict[str, Any]:
        return {"scheme": "refit", "of": str(self.source.folder), "epoch": self.epoch, "valid_csv": self.valid_csv,
                "source_validation": self.source.params.get("validation")}

    def splits(self, done: int) -> Iterator[Split]:
        every = np.arange(len(self.data.train_set.paths))
        yield Split(1, every, np.zeros(0, dtype=np.int64), offset=0, first_epoch=done + 1)

    def writer(self) -> Hook:
        return RefitWriter(self.run, self.source.folder / self.valid_csv, self.params.epochs)

    def discard_unrecorded(self, done: int) -> list[str]:
        """The last epoch's pair when a kill came between it and its checkpoint."""
        return self.run.remove_dumps_after(done)

    def finish(self, records: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
        return records[-1] if records else None

    partial = finish


class RefitWriter(Hook):
    """The last epoch's eval predictions, with the source's validation CSV of the chosen epoch beside them."""
    name = "writer"

    def __init__(self, run: RunFolder, source_valid: Path, epochs: int) -> None:
        self.run, self.source_valid, self.epochs = run, source_valid, epochs

    def after_epoch(self, epoch: Epoch) -> None:
        epoch.dump = epoch.number == self.epochs
        fit = self.loop.fit
        if not epoch.dump or not fit.loaders.eval:
            return
        evaluation = SoftTable(fit.loaders.eval_ids, csv_probs(fit.predictor(fit.loaders.eval).probs, fit.heads))
        _, valid_name = soft_csv_names(epoch.number, epoch.train.accuracy, epoch.train.loss)
        with self.loop.stop.protect():  # the validation CSV first, as for every dump
            with atomic_path(self.run.path / valid_name) as tmp:
                shutil.copyfile(self.source_valid, tmp)
            self.run.write_soft_csvs(epoch.number, epoch.train.accuracy, epoch.train.loss, None, evaluation)
