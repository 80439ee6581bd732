"""An experiment's run folders read into plain records: what each trial ran with, its epochs, its dumps and how it
ended. Nothing here writes, plots or imports torch, so the report runs on a machine that only has the results.

A run folder is a folder directly under the experiment holding params.json (NNI's own trials/, db/, log/ hold
none). A run folder that cannot be read is skipped with one line naming the file and what was expected; the
experiment folder itself must exist and hold at least one readable run."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.labels import CLASSIFICATIONS
from harness.errors import UserError
from harness.outputs.stop import STOPPED

PARAMS, METRICS = "params.json", "metrics.jsonl"
METRIC_NAMES = ("val_acc", "val_f1")
# The numbers of a metrics.jsonl line that the report reads: each must be a number or null.
NUMBERS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds")
# Both names of a dump (harness/outputs/soft_csv.py: soft_csv_names), with predict.py's '-pred<n>' tag.
SOFT_NAME = re.compile(r"(submission|valid)(\d+)_([^_]+)_([^_]+?)(-pred\d+)?_soft\.csv")
# params.json keys that describe the run rather than choose how it trains: never shown as hyperparameters.
BOOKKEEPING = frozenset({
    "classification", "data_dir", "output_dir", "cache_dir", "weights", "device", "resume", "experiment_id",
    "trial_id", "parameter_id", "nni_parameter_set", "nni_parameters", "num_classes", "class_names", "data_layout",
    "argv", "heads", "validation"})


@dataclass(frozen=True)
class Dump:
    """One dump of a run: the soft CSVs of one epoch (or one re-prediction of it, tag '-pred<n>')."""
    epoch: int
    tag: str
    train_acc: str          # as the file name spells them
    train_loss: str
    eval_csv: str | None    # file names in the run folder
    valid_csv: str | None


@dataclass(frozen=True)
class Run:
    folder: Path
    params: dict[str, Any]
    records: tuple[dict[str, Any], ...]
    stopped: dict[str, Any] | None
    dumps: tuple[Dump, ...]
    notes: tuple[str, ...] = ()   # problems that did not stop the run from being read

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def trial_id(self) -> str:
        return str(self.params.get("trial_id") or self.folder.name)

    @property
    def task(self) -> str:
        return str(self.params["classification"])

    @property
    def model(self) -> str:
        return str(self.params.get("model", ""))

    @property
    def planned_epochs(self) -> int:
        return int(self.params["epochs"])


@dataclass(frozen=True)
class Experiment:
    path: Path
    runs: tuple[Run, ...]
    skipped: tuple[str, ...]   # one line per run folder left out: the file and what was expected

    @property
    def notes(self) -> tuple[str, ...]:
        return self.skipped + tuple(note for run in self.runs for note in run.notes)


def _json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: unreadable {what} ({type(error).__name__}: {error}); expected one JSON object")\
            from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected one JSON object, found {type(data).__name__}")
    return data


def read_params(path: Path) -> dict[str, Any]:
    params = _json_object(path, PARAMS)
    if params.get("classification") not in CLASSIFICATIONS:
        raise UserError(f"{path}: 'classification' is {params.get('classification')!r}, expected one of "
                        f"{', '.join(CLASSIFICATIONS)}")
    epochs = params.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"{path}: 'epochs' is {epochs!r}, expected a positive integer")
    return params


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's epochs; none when the file is missing (a trial writes it at the end of its first epoch)."""
    if not path.is_file():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable ({type(error).__name__})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise UserError(f"{path} line {number}: expected one JSON object with an integer 'epoch' per line, "
                            f"found {line[:60]!r}")
        wrong = [key for key in NUMBERS if not _is_number(record.get(key))]
        if wrong:
            raise UserError(f"{path} line {number}: {wrong[0]!r} is {record[wrong[0]]!r}, expected a number or null")
        records.append(record)
    return records


def read_dumps(folder: Path) -> list[Dump]:
    """The run's soft-CSV pairs by epoch and tag. Hidden temporaries (.name.tmp) never match the pattern."""
    pairs: dict[tuple[int, str, str, str], dict[str, str]] = {}
    for path in folder.iterdir():
        found = SOFT_NAME.fullmatch(path.name)
        if found and path.is_file():
            kind, epoch, acc, loss, tag = found.groups()
            pairs.setdefault((int(epoch), tag or "", acc, loss), {})[kind] = path.name
    return [Dump(epoch, tag, acc, loss, names.get("submission"), names.get("valid"))
            for (epoch, tag, acc, loss), names in sorted(pairs.items())]


def read_run(folder: Path) -> Run:
    """One run folder; a UserError naming the file when params.json or metrics.jsonl is not what a trial writes."""
    params = read_params(folder / PARAMS)
    records = read_metrics(folder / METRICS)
    stopped, notes = None, []
    if (folder / STOPPED).is_file():
        try:
            stopped = _json_object(folder / STOPPED, STOPPED)
        except UserError as error:
            # Still a stopped run: its epochs and dumps are worth showing, with the problem beside them.
            stopped, notes = {}, [str(error)]
    return Run(folder, params, tuple(records), stopped, tuple(read_dumps(folder)), tuple(notes))


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
    for folder in run_folders(path):
        try:
            runs.append(read_run(folder))
        except UserError as error:
            skipped.append(f"skipped {folder.name}: {error}")
    if not runs:
        raise UserError(f"{path}: no run folder could be read; the first: {skipped[0].split(': ', 1)[1]}")
    return Experiment(path, tuple(runs), tuple(skipped))


def status(run: Run) -> str:
    """'succeeded' (every planned epoch recorded), 'stopped at epoch N (SIGTERM)' (stopped.json), 'running/
    incomplete' (some epochs: still training, crashed, or diverged), 'failed before first epoch' (none yet)."""
    if run.stopped is not None:
        epoch = run.stopped.get("last_completed_epoch", run.records[-1]["epoch"] if run.records else 0)
        return f"stopped at epoch {epoch} ({run.stopped.get('signal', 'signal unknown')})"
    if not run.records:
        return "failed before first epoch"
    return "succeeded" if run.records[-1]["epoch"] >= run.planned_epochs else "running/incomplete"


def score_key(run: Run, metric: str) -> str:
    """The metric, or train accuracy for a run without validation (val_ratio 0), as a trial's NNI 'default'."""
    return metric if any(r.get(metric) is not None for r in run.records) else "train_acc"


def best_record(run: Run, metric: str) -> dict[str, Any] | None:
    """The epoch with the highest score, the earliest on ties (as harness.outputs.records.best_record, which is
    not imported: it would import torch); None before the first epoch."""
    key = score_key(run, metric)
    scored = [r for r in run.records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return max(scored, key=lambda r: r[key]) if scored else None


def score(run: Run, metric: str) -> float | None:
    best = best_record(run, metric)
    return None if best is None else best.get(metric)


def epoch_record(run: Run, epoch: int) -> dict[str, Any] | None:
    return next((r for r in reversed(run.records) if r["epoch"] == epoch), None)


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
