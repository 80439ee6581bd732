"""An experiment's run folders (read by harness.outputs.reading) as the report sees them: how each trial ended,
its best epoch, the ranking and the hyperparameters that differ. Nothing here writes, plots or imports torch.

A run folder that cannot be read is skipped with one line naming the file and what was expected; the experiment
folder itself must exist and hold at least one readable run."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.labels import CLASSIFICATIONS
from harness.errors import UserError
from harness.experiment.stops import read_stops, stops_file
from harness.outputs.reading import PARAMS, Run, best_record, read_run

METRIC_NAMES = ("val_acc", "val_f1")
# params.json keys that describe the run rather than choose how it trains: never shown as hyperparameters.
BOOKKEEPING = frozenset({
    "classification", "data_dir", "output_dir", "cache_dir", "weights", "device", "resume", "experiment_id",
    "trial_id", "parameter_id", "nni_parameter_set", "nni_parameters", "nni_handout", "num_classes", "class_names",
    "data_layout", "argv", "heads", "validation"})


@dataclass(frozen=True)
class Experiment:
    path: Path
    runs: tuple[Run, ...]
    skipped: tuple[str, ...]   # one line per run folder left out: the file and what was expected

    @property
    def notes(self) -> tuple[str, ...]:
        return self.skipped + tuple(note for run in self.runs for note in run.notes)


def run_folders(path: Path) -> list[Path]:
    if not path.is_dir():
        raise UserError(f"{path}: {'not a folder' if path.exists() else 'folder not found'} "
                        f"(expected an experiment folder, nni_experiments/<experiment>)")
    if (path / PARAMS).is_file():
        raise UserError(f"{path}: a run folder (it holds {PARAMS}); give its experiment folder, {path.parent}")
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / PARAMS).is_file())
    if not folders:
        raise UserError(f"{path}: no run folders in it (expected folders holding {PARAMS}, as trial.py writes "
                        f"under nni_experiments/<experiment>/)")
    return folders


def read_experiment(path: Path) -> Experiment:
    runs, skipped = [], []
    # The assessor's own record of its stops, in NNI's log folder beside the run folders (the shipped configs put
    # both under experimentWorkingDirectory/<id>): it names a stop whose trial could not write so in stopped.json.
    assessor_stops = read_stops(stops_file(path / "log"))
    for folder in run_folders(path):
        try:
            runs.append(with_assessor_stop(read_run(folder), assessor_stops))
        except UserError as error:
            skipped.append(f"skipped {folder.name}: {error}")
    if not runs:
        raise UserError(f"{path}: no run folder could be read; the first: {skipped[0].split(': ', 1)[1]}")
    return Experiment(path, tuple(runs), tuple(skipped))


def with_assessor_stop(run: Run, assessor_stops: dict[str, dict[str, Any]]) -> Run:
    if run.stopped is None or run.stopped.get("stopped_by") == "assessor" or run.trial_id not in assessor_stops:
        return run
    return dataclasses.replace(run, stopped={**run.stopped, "stopped_by": "assessor"})


def stopped_by_assessor(run: Run) -> bool:
    return run.stopped is not None and run.stopped.get("stopped_by") == "assessor"


def status(run: Run) -> str:
    """'succeeded' (every planned epoch recorded), 'stopped by the assessor at epoch N' or 'stopped at epoch N
    (SIGTERM)' (stopped.json), 'running/incomplete' (some epochs: still training, crashed, or diverged), 'failed
    before first epoch' (none yet)."""
    if run.stopped is not None:
        epoch = run.stopped.get("last_completed_epoch", run.records[-1]["epoch"] if run.records else 0)
        if stopped_by_assessor(run):
            return f"stopped by the assessor at epoch {epoch}"
        return f"stopped at epoch {epoch} ({run.stopped.get('signal', 'signal unknown')})"
    if not run.records:
        return "failed before first epoch"
    return "succeeded" if run.records[-1]["epoch"] >= run.planned_epochs else "running/incomplete"


def score_key(run: Run, metric: str) -> str:
    """The metric, or train accuracy for a run without validation (val_ratio 0), as a trial's NNI 'default'."""
    return metric if any(r.get(metric) is not None for r in run.records) else "train_acc"


def best_epoch(run: Run, metric: str) -> dict[str, Any] | None:
    """The run's best epoch by `metric` (train accuracy for a run without validation); None before the first."""
    return best_record(run.records, score_key(run, metric))


def score(run: Run, metric: str) -> float | None:
    best = best_epoch(run, metric)
    return None if best is None else best.get(metric)


def ranked(runs: Sequence[Run], metric: str) -> list[Run]:
    """Best score first; runs without one last, in folder order."""
    return sorted(runs, key=lambda run: (score(run, metric) is None, -(score(run, metric) or 0.0)))


def tasks(runs: Sequence[Run]) -> list[str]:
    """The experiment's tasks in the registry's order (mask, gender, age, multi, multihead)."""
    present = {run.task for run in runs}
    return [task for task in CLASSIFICATIONS if task in present]


def param_value(run: Run, key: str) -> Any:
    """What the run trained with: params.json's merged value; keys only NNI knows (TRIAL_BUDGET) from NNI's."""
    if key in run.params:
        return run.params[key]
    return (run.params.get("nni_parameters") or {}).get(key)


def hyperparameters(runs: Sequence[Run]) -> tuple[list[str], dict[str, Any]]:
    """(the hyperparameters that differ between runs, {the others: their one value}).

    The candidates are the keys NNI chose (nni_parameters): the search space. Standalone runs have none, so there
    every trial.py setting is a candidate. 'classification' is the task column, not a hyperparameter."""
    searched = sorted({key for run in runs for key in (run.params.get("nni_parameters") or {})} - {"classification"})
    candidates = searched or sorted({key for run in runs for key in run.params} - BOOKKEEPING)
    varying, constant = [], {}
    for key in candidates:
        values = {json.dumps(param_value(run, key), sort_keys=True, default=str) for run in runs}
        if len(values) > 1:
            varying.append(key)
        else:
            constant[key] = param_value(runs[0], key)
    return varying, constant
