"""Checkpoints in the run folder, and resuming a run from its last one.

`--checkpoint last` keeps last.pt: everything needed to continue after the last completed epoch (model, optimiser,
scheduler, grad scaler, the RNG states of torch, numpy, python, the train loader's shuffling and the augmentation,
the epoch, the dump rule's state and the records so far, and with `--ema_decay` the averaged weights and their
step count under "ema"). `--checkpoint best` keeps best.pt: the weights of the best epoch so far (and their
average under "ema"), for `python -m harness.predict`, which predicts with the average when there is one.
Checkpoints written before "ema" existed load as before. `none` keeps nothing. Both files are written whole or not at
all (a temporary file renamed over the old one), so a kill at any moment leaves the previous checkpoint intact."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.atomic import atomic_path
from harness.errors import UserError
from harness.train.averaging import WeightAverage

CHECKPOINT_MODES = ("last", "best", "none")
LAST, BEST = "last.pt", "best.pt"


@dataclass
class TrainingState:
    """What a resumed run must get back, besides the epoch, the dump state and the records."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    train_loader: DataLoader
    average: WeightAverage | None = None  # --ema_decay above 0


def augment_parts(augment: Any) -> list[Any]:
    """The pipeline and every transform in it: albumentations' set_random_seed gives each its own generators."""
    parts = [augment] if hasattr(augment, "random_generator") else []
    for child in getattr(augment, "transforms", []):
        parts += augment_parts(child)
    return parts


def rng_states(loader: DataLoader) -> dict[str, Any]:
    """Every random source a training epoch draws from in the main process. With loader workers, each worker's
    augmentation RNG lives in that worker and is not captured: a resumed run's augmentations then differ."""
    augment = getattr(loader.dataset, "augment", None)
    return {
        "torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
        "loader": loader.generator.get_state() if loader.generator is not None else None,
        "augment": [(part.random_generator.bit_generator.state, part.py_random.getstate())
                    for part in augment_parts(augment)],
    }


def restore_rng_states(loader: DataLoader, states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if states["loader"] is not None and loader.generator is not None:
        loader.generator.set_state(states["loader"])
    parts = augment_parts(getattr(loader.dataset, "augment", None))
    if len(parts) != len(states["augment"]):
        raise UserError(f"the checkpoint's augmentation has {len(states['augment'])} random parts, this run's "
                        f"{len(parts)}: resume with the code the run was started with")
    for part, (generator, py_random) in zip(parts, states["augment"], strict=True):
        part.random_generator.bit_generator.state = generator  # in place: the parts may share generators
        part.py_random.setstate(py_random)


def save(data: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
    except Exception as error:  # a truncated or foreign file: name it rather than show torch's traceback
        raise UserError(f"{path} cannot be read as a checkpoint ({type(error).__name__}: {error})") from None


def is_better(record: dict[str, Any], best: float | None, key: str) -> bool:
    """The best checkpoint follows the metric NNI maximises; the earliest epoch wins ties (as best_record)."""
    return record.get(key) is not None and (best is None or record[key] > best)


class Checkpointer:
    def __init__(self, folder: Path, mode: str, key: str) -> None:
        if mode not in CHECKPOINT_MODES:
            raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {mode!r}")
        self.folder, self.mode, self.key = Path(folder), mode, key
        self.best: float | None = None

    def save(self, state: TrainingState, epoch: int, last_dump_loss: float | None,
             records: list[dict[str, Any]]) -> None:
        """After epoch `epoch` (its record last in `records`), with the scheduler already stepped."""
        record = records[-1]
        average = {"ema": state.average.state_dict()} if state.average is not None else {}
        if self.mode == "best" and is_better(record, self.best, self.key):
            save({"model": state.model.state_dict(), **average, "epoch": epoch, "record": record},
                 self.folder / BEST)
        if is_better(record, self.best, self.key):
            self.best = record[self.key]
        if self.mode == "last":
            save({"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                  "scheduler": state.scheduler.state_dict(),
                  "scaler": state.scaler.state_dict() if state.scaler is not None else None,
                  "rng": rng_states(state.train_loader), "epoch": epoch, "last_dump_loss": last_dump_loss,
                  "records": records, "best": self.best, **average}, self.folder / LAST)

    def has_last(self) -> bool:
        return (self.folder / LAST).exists()

    def resume(self, state: TrainingState) -> tuple[int, float | None, list[dict[str, Any]]]:
        """(first epoch to run, the dump rule's last loss, the records so far); (1, None, []) with no last.pt."""
        data = self.load_last()
        return (1, None, []) if data is None else self.restore(state, data)

    def load_last(self) -> dict[str, Any] | None:
        path = self.folder / LAST
        return load(path) if path.exists() else None

    def restore(self, state: TrainingState, data: dict[str, Any]) -> tuple[int, float | None, list[dict[str, Any]]]:
        """Load last.pt's `data` into `state`; returns what resume() does."""
        state.model.load_state_dict(data["model"])
        state.optimizer.load_state_dict(data["optimizer"])
        state.scheduler.load_state_dict(data["scheduler"])
        if state.scaler is not None and data["scaler"] is not None:
            state.scaler.load_state_dict(data["scaler"])
        restore_rng_states(state.train_loader, data["rng"])
        if state.average is not None and "ema" in data:
            state.average.load_state_dict(data["ema"])
        elif state.average is not None:  # a checkpoint from before the average existed: it starts from here
            state.average.restart_from(state.model)
        self.best = data["best"]
        return data["epoch"] + 1, data["last_dump_loss"], data["records"]


def weights_for_prediction(folder: Path) -> tuple[dict[str, Any], int]:
    """(model state, epoch) of best.pt, else of last.pt: the averaged weights when the run kept an average (what
    its soft CSVs were predicted with), else the model's."""
    for name in (BEST, LAST):
        if (Path(folder) / name).exists():
            data = load(Path(folder) / name)
            return (data["ema"]["weights"] if "ema" in data else data["model"]), data["epoch"]
    raise UserError(f"{folder} holds no checkpoint ({BEST} or {LAST}): run the trial with --checkpoint best or last")
