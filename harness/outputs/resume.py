"""`trial.py --resume RUN_DIR`: the run folder and the parameters a stopped standalone run continues with."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.outputs.run_folder import RunFolder
from harness.params import TrialParams, merge_parameters
from harness.train.checkpoint import LAST


def resumed_run(run_dir: str) -> tuple[TrialParams, RunFolder, str, str]:
    """(the parameters of params.json, the run folder, experiment id, trial id). The run continues exactly as it
    was started: its params.json's values, not the flags given with --resume."""
    folder = Path(run_dir)
    described = folder / "params.json"
    if not described.is_file():
        raise UserError(f"--resume {run_dir}: {described} not found (expected a trial's run folder)")
    if not (folder / LAST).is_file():
        raise UserError(f"--resume {run_dir}: {folder / LAST} not found (the run was not started with "
                        f"--checkpoint last, or finished no epoch)")
    recorded = read_params_json(folder)
    params = recorded_params(recorded, resume=str(folder))
    run = RunFolder(folder.parent.parent, folder.parent.name, folder.name)
    return params, run, recorded.get("experiment_id", folder.parent.name), recorded.get("trial_id", "")


def read_params_json(folder: Path) -> dict[str, Any]:
    described = Path(folder) / "params.json"
    if not described.is_file():
        raise UserError(f"{described} not found (expected a trial's run folder)")
    try:
        return json.loads(described.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{described} cannot be read as JSON ({error})") from None


def recorded_params(recorded: dict[str, Any], **overrides: Any) -> TrialParams:
    """The TrialParams a run folder's params.json describes, with `overrides` over them."""
    values = {f.name: recorded[f.name] for f in fields(TrialParams) if f.name in recorded}
    # As flags, not as NNI's values: paths are recorded there, and only NNI is kept from setting paths.
    return merge_parameters({**{f.name: f.default for f in fields(TrialParams)}, **values, **overrides}, None)
