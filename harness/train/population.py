"""Population Based Training (config.pbt.yml): a trial starts from the weights in `load_checkpoint_dir` when NNI's
PBT tuner gives it a parent there, and leaves its own in `save_checkpoint_dir` for the next step.

NNI's PBT tuner names both folders <all_checkpoint_dir>/<member>/<step>. A member that continues itself gets its
own last folder as load_checkpoint_dir; one of the worst fraction gets a better member's; the first step gets an
empty folder (a fresh start). The folders are paths that arrive through NNI's REST API, which has no
authentication: each must lie under the experiment's own folder (<output_dir>/<experiment id>/, where NNI's
default all_checkpoint_dir is), never in NNI's own files there, so an injected trial cannot read or write
elsewhere.

What carries over: the model's weights and the optimiser's state (Adam's moments, SGD's momentum), with the lr and
weight decay this trial was given put in place of the saved ones; the scheduler starts again for this step's
--epochs (PBT's own perturbations are the schedule: config.pbt.yml uses --scheduler none)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.errors import UserError
from harness.fit.hooks import Hook
from harness.outputs.records import val_scores
from harness.train.checkpoint import checked_keys, load, restored, save

if TYPE_CHECKING:
    from harness.outputs.run_folder import RunFolder

log = logging.getLogger("trial")
MEMBER = "member.pt"
# NNI's own folders in an experiment's folder: a PBT folder named there could overwrite its database or logs.
NNI_FOLDERS = frozenset({"db", "log", "trials", "environments", ".configs"})  # not checkpoint/: PBT's own default


def checked_folder(path: str, experiment_folder: Path, key: str) -> Path | None:
    """The folder NNI named, resolved, once it is known to lie under the experiment's folder and outside NNI's own
    files; None if not given."""
    if not path:
        return None
    folder, root = Path(path).resolve(), Path(experiment_folder).resolve()
    if not folder.is_relative_to(root) or folder == root:
        raise UserError(f"{key} {path} is outside the experiment's folder {root}: PBT's all_checkpoint_dir must be "
                        f"left at NNI's default (or set under the experiment's folder)")
    if folder.relative_to(root).parts[0] in NNI_FOLDERS:
        raise UserError(f"{key} {path} is inside NNI's own {folder.relative_to(root).parts[0]}/ folder of the "
                        f"experiment: PBT's checkpoints must not be written beside NNI's database and logs")
    return folder


def set_hyperparameters(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """This step's lr and weight decay over the parent's (initial_lr too: the new scheduler starts from it)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = lr
        group["weight_decay"] = weight_decay


def read_parent(folder: Path | None, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The parent's member.pt (None: a fresh start), refused when it is of another model, task or image size."""
    if folder is None or not (folder / MEMBER).is_file():
        return None
    data = checked_keys(load(folder / MEMBER), folder / MEMBER, {"model": dict, "optimizer": dict})
    recorded = data.get("identity") if isinstance(data.get("identity"), dict) else {}
    differs = {key: (recorded.get(key), value) for key, value in identity.items() if recorded.get(key) != value}
    if differs:
        described = ", ".join(f"{key} {theirs!r} there, {mine!r} here" for key, (theirs, mine) in differs.items())
        raise UserError(f"load_checkpoint_dir {folder}: the checkpoint is of another model ({described}); PBT's "
                        f"search space must not tune the model, the task or the image size")
    return data


class Population(Hook):
    """PBT's load and save: a split starts from the parent's weights (unless the run itself is being resumed) and
    leaves the member after its last epoch. population.json records where the weights came from and how they
    score here before training: the parent's last score when the weights really came over."""
    name = "population"

    def __init__(self, run: RunFolder, load_from: Path | None, save_to: Path | None, identity: dict[str, Any],
                 lr: float, weight_decay: float) -> None:
        self.run, self.load_from, self.save_to, self.identity = run, load_from, save_to, identity
        self.lr, self.weight_decay = lr, weight_decay

    def before_split(self) -> None:
        fit = self.loop.fit
        parent = None if fit.split.first_epoch > 1 else read_parent(self.load_from, self.identity)
        if parent is None:
            return
        restored(self.load_from / MEMBER, f"this trial's model with heads {fit.heads}", fit.start_from,
                 parent["model"], parent["optimizer"])
        set_hyperparameters(fit.optimizer, self.lr, self.weight_decay)
        start = val_scores(fit.validate(), fit.loaders.val_labels, fit.heads) if fit.loaders.val else None
        inherited = {"loaded_from": str(self.load_from), "parent_run": parent.get("run"),
                     "parent_record": parent.get("record"), "start": start}
        self.run.write_population(inherited)
        log.info("PBT: starts from %s (its last val_acc %s; here before training %s)", self.load_from,
                 (parent.get("record") or {}).get("val_acc"), (start or {}).get("val_acc"))

    def after_split(self) -> None:
        if self.save_to is None:
            return
        fit = self.loop.fit
        with self.loop.stop.protect():  # the next PBT step starts from here
            self.save_to.mkdir(parents=True, exist_ok=True)
            save({"model": fit.model.state_dict(), "optimizer": fit.optimizer.state_dict(),
                  "identity": self.identity, "run": str(self.run.path), "record": self.loop.records[-1]},
                 self.save_to / MEMBER)
