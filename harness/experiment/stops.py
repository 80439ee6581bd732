"""The assessor's stops, as the assessor itself records them: <experiment>/log/assessor_stops.jsonl, one line per
stopped trial ({"trial", "step", "reason"}).

Why a file of our own: NNI 3.0's local service shows a trial its assessor stopped as USER_CANCELED, never
EARLY_STOPPED (compat.js's cancelTrialJob sets the early-stop flag only after the trial's end has set its status),
and its REST API and export do not say who stopped a trial. The harness's assessors (harness/experiment/
assessors.py) write the line before they answer Bad, so before NNI sends the signal: the stopped trial, the
follower and the report read it here. nnimanager.log's `cancelTrialJob: "<id>"` lines stay a second source
(harness/experiment/logs.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.atomic import write_text

STOPS_FILE = "assessor_stops.jsonl"
MAX_STOPS_BYTES = 16 * 2**20  # a search stops at most a few thousand trials: a larger file is not ours


def stops_file(log_dir: str | os.PathLike | None) -> Path | None:
    """The stops file in an experiment's log folder (the dispatcher's NNI_LOG_DIRECTORY); None without one."""
    return Path(log_dir) / STOPS_FILE if log_dir else None


def read_stops(path: Path | None) -> dict[str, dict[str, Any]]:
    """trial id -> its stop ({"trial", "step", "reason"}); {} without the file. A line that is not such a record
    (a hand edit, a disk that filled) is skipped: the file is a second opinion, nnimanager.log the first."""
    try:
        if path is None or path.stat().st_size > MAX_STOPS_BYTES:
            return {}
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    stops = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (isinstance(record, dict) and isinstance(record.get("trial"), str)
                and isinstance(record.get("step"), int) and isinstance(record.get("reason"), str)):
            stops.setdefault(record["trial"], record)
    return stops


def record_stop(path: Path, trial: str, step: int, reason: str) -> bool:
    """Adds a trial's stop to the file, written whole (a temporary file renamed); False when the trial is there
    already (NNI asks the assessor again at each result a dying trial still reports)."""
    stops = read_stops(path)
    if trial in stops:
        return False
    stops[trial] = {"trial": trial, "step": step, "reason": reason}
    write_text("".join(json.dumps(record) + "\n" for record in stops.values()), path)
    return True


def experiment_log_dir() -> Path | None:
    """The experiment's log folder as a trial of the local service finds it: its NNI_OUTPUT_DIR is
    <experiment>/environments/<env>/trials/<trial id>, the experiment folder being the one named NNI_EXP_ID."""
    output, experiment = os.environ.get("NNI_OUTPUT_DIR"), os.environ.get("NNI_EXP_ID")
    if not output or not experiment:
        return None
    found = next((parent for parent in Path(output).parents if parent.name == experiment), None)
    return found / "log" if found is not None and (found / "log").is_dir() else None


def assessor_stop_of_this_trial() -> dict[str, Any] | None:
    """This trial's stop as its experiment's assessor recorded it, read when a stop signal arrives: the
    assessor writes it before NNI sends the signal. None standalone, on a service whose trials cannot see the
    experiment's log folder (remote), or when the assessor did not stop this trial."""
    trial = os.environ.get("NNI_TRIAL_JOB_ID")
    log_dir = experiment_log_dir()
    return read_stops(stops_file(log_dir)).get(trial) if trial and log_dir else None
