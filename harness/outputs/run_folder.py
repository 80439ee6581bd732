"""A trial's run folder: <output_dir>/<experiment id>/<task>_<model>_<batch_size>_<criterion>_<lr>_<trial id>/
holding params.json, metrics.jsonl and the soft CSVs (harness/outputs/reading.py reads them back). Every file is
written whole or not at all."""
from __future__ import annotations

import datetime
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from harness.atomic import make_folder, remove_stale_temporaries, write_csv, write_json, write_jsonl
from harness.errors import UserError
from harness.locks import after, held_by, wait_for_lock
from harness.outputs.reading import COST, METRICS, PARAMS, STOPPED, read_dumps
from harness.outputs.soft_csv import SoftTable, soft_csv_names

log = logging.getLogger("trial")
# Seconds a trial waits for another writer of its run folder to let go: long enough for a stopping one to finish
# its last write (NNI 3.0 kills a trial 5 s after its stop signal), short enough to fail a duplicate soon.
CLAIM_WAIT_S = 10.0


def run_folder_name(task: str, model: str, batch_size: int, criterion: str, lr: float, trial_id: str) -> str:
    model = model.replace("/", "-")  # hub-style timm names must not nest folders
    return f"{task}_{model}_{batch_size}_{criterion}_{lr:.3g}_{trial_id}"


def stop_record(cause: str, records: list[dict[str, Any]], checkpoint: str | None,
                assessor: dict[str, Any] | None = None) -> dict[str, Any]:
    """What stopped.json says: the last step whose record, CSVs and checkpoint are complete, what stopped it (a
    signal's name, or the reason the trial stopped itself), and who: "assessor" when the experiment's assessor
    recorded this trial's stop (its step and reason beside it), else None (nnictl stop, the web UI, a user's
    signal: a trial cannot tell these apart)."""
    found = {"stopped": True, "signal": cause, "stopped_by": "assessor" if assessor else None,
             "last_completed_epoch": records[-1]["epoch"] if records else 0,
             "checkpoint": checkpoint, "at": datetime.datetime.now(datetime.UTC).isoformat()}
    if assessor:
        found["assessor"] = {"step": assessor.get("step"), "reason": assessor.get("reason")}
    return found


class RunFolder:
    def __init__(self, output_dir: str | os.PathLike, experiment_id: str, name: str) -> None:
        self.path = make_folder(Path(output_dir) / experiment_id / name)
        self.lock: int | None = None  # the descriptor holding this folder's lock, once claimed

    @property
    def claimed(self) -> bool:
        return self.lock is not None

    def claim(self, wait_s: float = CLAIM_WAIT_S,
              others: str = "a second --resume of it, or an earlier run of this NNI trial still running") -> None:
        """The trial that writes this folder takes it, for as long as it lives: an exclusive lock (flock) on the
        folder itself, so that a second `--resume` of it, or NNI re-running a trial whose earlier process still
        runs, cannot write beside it (it waits `wait_s` for the lock, then refuses; `others` says who that may be).
        Then what a killed earlier run of it left half-written goes."""
        descriptor = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if not wait_for_lock(descriptor, after(wait_s)):
            os.close(descriptor)
            raise UserError(f"{self.path} is being written by another process{held_by(self.path)} ({others}): "
                            f"not started, nothing written (waited {wait_s:g} s)")
        self.lock = descriptor  # the kernel drops the lock when the process ends, however it ends
        remove_stale_temporaries(self.path)

    def release(self) -> None:
        """The writer is done (a trial or predict.py run in-process, as the tests do, returns): the folder is free."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    def remove_dumps_after(self, epoch: int) -> list[str]:
        """The trial's own soft CSVs of epochs after `epoch` (not predict.py's '-pred' ones): what a kill between a
        dump and its checkpoint, or an earlier attempt of the same NNI trial, left that the records do not have.
        Returns the names removed."""
        removed = []
        for dump in read_dumps(self.path):
            if dump.epoch > epoch and not dump.tag:
                for name in (dump.eval_csv, dump.valid_csv):
                    if name:
                        (self.path / name).unlink(missing_ok=True)
                        removed.append(name)
        return removed

    @classmethod
    def at(cls, folder: str | os.PathLike) -> RunFolder:
        """An existing run folder (--resume, predict.py)."""
        folder = Path(folder)
        return cls(folder.parent.parent, folder.parent.name, folder.name)

    def discard_if_unused(self) -> bool:
        """Remove the folder when it holds nothing but what this trial wrote before its first epoch (params.json,
        an empty TensorBoard log): a trial that failed on its input leaves no run folder behind. Anything else in
        it, or any file not known here, keeps it; so does a folder this process has not claimed (another writer's)."""
        if not self.claimed:
            return False
        known = {PARAMS, "tensorboard"}
        if any(p.name not in known for p in self.path.iterdir()):
            return False
        if (self.path / "tensorboard").is_dir():
            shutil.rmtree(self.path / "tensorboard")
        (self.path / PARAMS).unlink(missing_ok=True)
        self.path.rmdir()
        return True

    def write_params(self, description: dict[str, Any]) -> None:
        write_json(description, self.path / PARAMS)

    def write_population(self, inherited: dict[str, Any]) -> None:
        """population.json: where a PBT trial's weights came from, the parent's last record and their score here
        before training."""
        write_json(inherited, self.path / "population.json")

    def write_cost(self, cost: dict[str, Any]) -> None:
        """cost.json: the final model's inference time per image and parameter count (harness/train/cost.py)."""
        write_json(cost, self.path / COST)

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        write_jsonl(records, self.path / METRICS)

    def record_stop(self, signal_name: str, records: list[dict[str, Any]], checkpoint: str | None,
                    assessor: dict[str, Any] | None = None) -> None:
        write_json(stop_record(signal_name, records, checkpoint, assessor), self.path / STOPPED)

    def clear_stop(self) -> None:
        """A resumed run is no longer stopped."""
        (self.path / STOPPED).unlink(missing_ok=True)

    def write_soft_csvs(self, epoch: int, train_accuracy: float, train_loss: float, val: SoftTable | None,
                        evaluation: SoftTable | None, tag: str = "") -> list[Path]:
        """The validation CSV first: an eval CSV on disk always has its validation partner beside it."""
        eval_name, val_name = soft_csv_names(epoch, train_accuracy, train_loss, tag)
        written = []
        for table, name in ((val, val_name), (evaluation, eval_name)):
            if table is not None:
                write_csv(table.frame(), self.path / name)
                written.append(self.path / name)
        return written
