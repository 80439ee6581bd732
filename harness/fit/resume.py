"""`trial.py --resume RUN_DIR`, and predict.py: a run folder's parameters read back. The run continues exactly as it
was started, with its params.json's values (each checked against its flag's type and range), not the flags given
with --resume."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.outputs.reading import PARAMS, read_params
from harness.outputs.run_folder import RunFolder
from harness.params import TrialParams, check, coerce
from harness.train.checkpoint import LAST


def resumed_run(run_dir: str) -> tuple[TrialParams, RunFolder, str, str]:
    """(the parameters of params.json, the run folder, experiment id, trial id)."""
    folder = Path(run_dir)
    if not (folder / PARAMS).is_file():
        raise UserError(f"--resume {run_dir}: {folder / PARAMS} not found (expected a trial's run folder)")
    if not (folder / LAST).is_file():
        raise UserError(f"--resume {run_dir}: {folder / LAST} not found (the run was not started with "
                        f"--checkpoint last, or finished no epoch)")
    recorded = read_params(folder / PARAMS)
    params = recorded_params(recorded, folder, resume=str(folder))
    ids = [recorded.get(key, default) for key, default in (("experiment_id", folder.parent.name), ("trial_id", ""))]
    return params, RunFolder.at(folder), str(ids[0]), str(ids[1])


def check_same_data(folder: Path, fingerprint: str) -> None:
    """A run that continues from its last.pt (--resume, or NNI re-running the trial) must read the data set it
    started with: its validation split, its classes and its soft CSVs' rows depend on it (params.json's
    data_fingerprint; a run folder without one predates it and is not checked)."""
    if not (folder / LAST).is_file() or not (folder / PARAMS).is_file():
        return
    recorded = read_params(folder / PARAMS)
    before = recorded.get("data_fingerprint")
    if before is not None and before != fingerprint:
        raise UserError(f"{folder}: its data set changed since the run started (data_fingerprint {before} in "
                        f"{PARAMS}, {fingerprint} now): its validation split would differ; continue it on the data it "
                        f"started with, or start a new run")


def recorded_params(recorded: dict[str, Any], folder: Path, **overrides: Any) -> TrialParams:
    """The TrialParams a run folder's params.json describes, with `overrides` over them; a recorded value of the
    wrong type or out of range is a UserError naming the file."""
    values = {f.name: f.default for f in fields(TrialParams)}
    try:
        for f in fields(TrialParams):
            if f.name in recorded:
                values[f.name] = coerce(f.name, recorded[f.name])
        values.update(overrides)
        params = TrialParams(**values)
        check(params)
    except UserError as error:
        raise UserError(f"{folder / PARAMS}: {error}") from None
    return params


