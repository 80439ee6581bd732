"""A trial's run folder: <output_dir>/<experiment id>/<task>_<model>_<batch_size>_<criterion>_<lr>_<trial id>/
holding params.json, metrics.jsonl and the soft CSVs. Every file is written whole or not at all."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import make_folder, remove_stale_temporaries, write_csv, write_json, write_jsonl
from harness.outputs.soft_csv import soft_csv_names, soft_frame


def run_folder_name(task: str, model: str, batch_size: int, criterion: str, lr: float, trial_id: str) -> str:
    model = model.replace("/", "-")  # hub-style timm names must not nest folders
    return f"{task}_{model}_{batch_size}_{criterion}_{lr:.3g}_{trial_id}"


class RunFolder:
    def __init__(self, output_dir: str | os.PathLike, experiment_id: str, name: str) -> None:
        self.path = make_folder(Path(output_dir) / experiment_id / name)
        remove_stale_temporaries(self.path)  # a killed earlier run of this trial (NNI's resume) may have left some
        self.records: list[dict[str, Any]] = []

    def discard_if_unused(self) -> bool:
        """Remove the folder when it holds nothing but what this trial wrote before its first epoch (params.json,
        an empty TensorBoard log): a trial that failed on its input leaves no run folder behind. Anything else in
        it, or any file not known here, keeps it."""
        known = {"params.json", "tensorboard"}
        if self.records or any(p.name not in known for p in self.path.iterdir()):
            return False
        if (self.path / "tensorboard").is_dir():
            shutil.rmtree(self.path / "tensorboard")
        (self.path / "params.json").unlink(missing_ok=True)
        self.path.rmdir()
        return True

    def write_params(self, description: dict[str, Any]) -> None:
        write_json(description, self.path / "params.json")

    def write_population(self, inherited: dict[str, Any]) -> None:
        """population.json: where a PBT trial's weights came from, the parent's last record and their score here
        before training."""
        write_json(inherited, self.path / "population.json")

    def add_metrics(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.write_metrics()

    def write_metrics(self) -> None:
        write_jsonl(self.records, self.path / "metrics.jsonl")

    def write_soft_csvs(self, epoch: int, train_accuracy: float, train_loss: float,
                        eval_ids: list[str] | None, eval_probs: np.ndarray | None,
                        val_ids: list[str] | None, val_labels: np.ndarray | None,
                        val_probs: np.ndarray | None, tag: str = "") -> list[Path]:
        """The validation CSV first: an eval CSV on disk always has its validation partner beside it."""
        eval_name, val_name = soft_csv_names(epoch, train_accuracy, train_loss, tag)
        written = []
        if val_probs is not None:
            write_csv(soft_frame(val_ids, val_probs, val_labels), self.path / val_name)
            written.append(self.path / val_name)
        if eval_probs is not None:
            write_csv(soft_frame(eval_ids, eval_probs), self.path / eval_name)
            written.append(self.path / eval_name)
        return written
