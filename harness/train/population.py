"""Population Based Training (config.pbt.yml): a trial starts from the weights in `load_checkpoint_dir` when NNI's
PBT tuner gives it a parent there, and leaves its own in `save_checkpoint_dir` for the next step.

NNI's PBT tuner names both folders <all_checkpoint_dir>/<member>/<step>. A member that continues itself gets its
own last folder as load_checkpoint_dir; one of the worst fraction gets a better member's; the first step gets an
empty folder (a fresh start). The folders are paths that arrive through NNI's REST API, which has no
authentication: each must lie under the experiment's own folder (<output_dir>/<experiment id>/, where NNI's
default all_checkpoint_dir is), so an injected trial cannot read or write elsewhere.

What carries over: the model's weights and the optimiser's state (Adam's moments, SGD's momentum), with the lr and
weight decay this trial was given put in place of the saved ones; the scheduler starts again for this step's
--epochs (PBT's own perturbations are the schedule: config.pbt.yml uses --scheduler none)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.errors import UserError
from harness.train.checkpoint import load, save

MEMBER = "member.pt"


def checked_folder(path: str, experiment_folder: Path, key: str) -> Path | None:
    """The folder NNI named, resolved, once it is known to lie under the experiment's folder; None if not given."""
    if not path:
        return None
    folder, root = Path(path).resolve(), Path(experiment_folder).resolve()
    if not folder.is_relative_to(root):
        raise UserError(f"{key} {path} is outside the experiment's folder {root}: PBT's all_checkpoint_dir must be "
                        f"left at NNI's default (or set under the experiment's folder)")
    return folder


def set_hyperparameters(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """This step's lr and weight decay over the parent's (initial_lr too: the new scheduler starts from it)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = lr
        group["weight_decay"] = weight_decay


def load_parent(folder: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer, identity: dict[str, Any],
                lr: float, weight_decay: float) -> dict[str, Any] | None:
    """Load the parent's member.pt into model and optimizer; returns what it recorded (None: a fresh start)."""
    if folder is None or not (folder / MEMBER).is_file():
        return None
    data = load(folder / MEMBER)
    differs = {key: (data["identity"].get(key), value) for key, value in identity.items()
               if data["identity"].get(key) != value}
    if differs:
        described = ", ".join(f"{key} {theirs!r} there, {mine!r} here" for key, (theirs, mine) in differs.items())
        raise UserError(f"load_checkpoint_dir {folder}: the checkpoint is of another model ({described}); PBT's "
                        f"search space must not tune the model, the task or the image size")
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    set_hyperparameters(optimizer, lr, weight_decay)
    return {"loaded_from": str(folder), "parent_run": data["run"], "parent_record": data["record"]}


def save_member(folder: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                identity: dict[str, Any], run: Path, record: dict[str, Any]) -> None:
    """The weights and optimiser state the next PBT step starts from, written whole or not at all."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "identity": identity, "run": str(run),
          "record": record}, folder / MEMBER)
