"""The one reading of a run folder, for everything that reads runs back: the report, the ensemble, predict.py,
--resume and the experiment follower. Nothing here imports torch, so a machine that only has the results can read
them.

A run folder is a folder holding params.json (NNI's own trials/, db/, log/ hold none). Everything read is
type-checked: a params.json that is not a JSON object, or a metrics.jsonl line that is not one epoch's record, is a
UserError naming the file and what was expected."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.labels import CLASSIFICATIONS, csv_task
from harness.errors import UserError, one_line

PARAMS, METRICS, STOPPED, COST = "params.json", "metrics.jsonl", "stopped.json", "cost.json"
MAX_JSON_BYTES = 64 * 2**20  # a params.json or metrics.jsonl larger than this is not one a trial wrote
# The numbers of a metrics.jsonl line that readers use: each must be a number or null.
NUMBERS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds")
# Both names of a dump (harness/outputs/soft_csv.py: soft_csv_names), with predict.py's '-pred<n>' tag.
SOFT_NAME = re.compile(r"(submission|valid)(\d+)_([^_]+)_([^_]+?)(-pred\d+)?_soft\.csv")


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
    cost: dict[str, Any] | None = None  # cost.json: ms_per_image, parameters (harness/train/cost.py)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def trial_id(self) -> str:
        return str(self.params.get("trial_id") or self.folder.name)

    @property
    def task(self) -> str:
        """The search-space 'classification' the run trained."""
        return str(self.params["classification"])

    @property
    def csv_task(self) -> str:
        """What its soft CSVs predict: its one head's task, or 'multi' (a multihead run votes as a multi member)."""
        return csv_task(self.task)

    @property
    def model(self) -> str:
        return str(self.params.get("model", ""))

    @property
    def planned_epochs(self) -> int:
        return int(self.params["epochs"])


def read_json(path: Path, what: str) -> Any:
    """A JSON file's contents; a UserError naming it when it cannot be read or is not JSON."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {path.stat().st_size / 1e6:.0f} MB is too large for {what}")
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: unreadable {what} ({type(error).__name__}: {one_line(error)})") from None


def json_object(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected one JSON object, found {type(data).__name__}")
    return data


def read_params(path: Path) -> dict[str, Any]:
    """A run's params.json, with the two keys every reader relies on checked."""
    if not path.is_file():
        raise UserError(f"{path} not found (expected a trial's run folder)")
    params = json_object(path, PARAMS)
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
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UserError(f"{path}: {path.stat().st_size / 1e6:.0f} MB is too large for a {METRICS}")
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
    folder = Path(folder)
    params = read_params(folder / PARAMS)
    records = read_metrics(folder / METRICS)
    stopped, notes = None, []
    if (folder / STOPPED).is_file():
        try:
            stopped = json_object(folder / STOPPED, STOPPED)
        except UserError as error:
            # Still a stopped run: its epochs and dumps are worth showing, with the problem beside them.
            stopped, notes = {}, [str(error)]
    cost, note = read_cost(folder / COST)
    notes += [note] if note else []
    return Run(folder, params, tuple(records), stopped, tuple(read_dumps(folder)), tuple(notes),
               cost)


def read_cost(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """cost.json, checked: (its contents, None), (None, None) when absent, (None, the problem) when unusable."""
    if not path.is_file():
        return None, None
    try:
        cost = json_object(path, COST)
    except UserError as error:
        return None, str(error)
    ms, parameters = cost.get("ms_per_image"), cost.get("parameters")
    if not (_is_number(ms) and ms is not None and math.isfinite(ms) and ms > 0) or isinstance(parameters, bool) \
            or not isinstance(parameters, int) or parameters < 0:
        return None, f"{path}: expected a positive 'ms_per_image' and an integer 'parameters'"
    return cost, None


def find_runs(root: Path, what: str = "given to --from") -> list[Path]:
    """Every run folder under `root` (one run, an experiment, or all of nni_experiments/), hidden folders skipped."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: {'not a folder' if root.exists() else 'folder not found'} ({what})")
    found = [p.parent for p in sorted(root.rglob(PARAMS))
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if not found:
        raise UserError(f"{root}: no run folders under it (a run folder holds {PARAMS}; {what})")
    return found


def find_run_of_trial(experiment_dir: Path, trial_id: str) -> Run | None:
    """The run folder NNI's trial `trial_id` wrote under its experiment's folder, read; None when there is none
    or it cannot be read. Run folder names end in _<trial id> (harness.outputs.run_folder.run_folder_name)."""
    for params in sorted(Path(experiment_dir).glob(f"*_{trial_id}/{PARAMS}")):
        try:
            return read_run(params.parent)
        except UserError:
            return None
    return None


def run_task(folder: Path) -> str | None:
    """The task a run folder's soft CSVs predict, from its params.json (None when unreadable)."""
    try:
        return csv_task(read_params(Path(folder) / PARAMS)["classification"])
    except UserError:
        return None


def best_record(records: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The epoch with the highest finite `key`, the earliest on ties; None when no epoch has one."""
    scored = [r for r in records if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
              and math.isfinite(r[key])]
    return max(scored, key=lambda r: r[key]) if scored else None


def record_of(records: Sequence[dict[str, Any]], epoch: int) -> dict[str, Any] | None:
    """The record of `epoch` (the last one, should a file hold it twice)."""
    return next((r for r in reversed(records) if r.get("epoch") == epoch), None)
