"""Checkpoints in the run folder: the Checkpoint hook, which gathers the state of the run (the split's fit, the
loop's records, every hook's own state) after each epoch, and restores it when a run resumes.

`--checkpoint last` keeps last.pt: everything needed to continue after the last completed epoch (model, optimiser,
scheduler, grad scaler, the weight average, the RNG states of torch, numpy, python, the train loader's shuffling and
the augmentation, the step, the records so far and the hooks' states). `--checkpoint best` keeps best.pt: the
weights of the best epoch so far (and their average), for predict.py. `none` keeps nothing. Both files are written
whole or not at all, so a kill at any moment leaves the previous checkpoint intact.

Loading never runs code: torch.load(weights_only=True) reads only tensors and plain Python values, and everything
saved here is made of those (the RNG states are converted), so a pickled payload planted in a run folder, shared
between team-mates or machines, fails with one line naming the file instead of running."""
from __future__ import annotations

import logging
import pickle
import random
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.atomic import atomic_path
from harness.data.transforms import TrainAugment
from harness.errors import UserError, one_line
from harness.fit.hooks import Hook

if TYPE_CHECKING:
    from harness.outputs.run_folder import RunFolder

log = logging.getLogger("trial")
CHECKPOINT_MODES = ("last", "best", "none")
LAST, BEST = "last.pt", "best.pt"
FORMAT = 2  # bumped when what last.pt holds changes shape; an older file is refused with one line


def augment_parts(augment: Any) -> list[Any]:
    """The pipeline and every transform in it: albumentations' set_random_seed gives each its own generators."""
    if isinstance(augment, TrainAugment):
        augment = augment.built()
    parts = [augment] if hasattr(augment, "random_generator") else []
    for child in getattr(augment, "transforms", []):
        parts += augment_parts(child)
    return parts


def rng_states(loader: DataLoader) -> dict[str, Any]:
    """Every random source a training epoch draws from in the main process, as tensors and plain values (what
    weights_only loading reads). With loader workers, each worker's augmentation RNG lives in that worker and is
    not captured: a resumed run's augmentations then differ."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    augment = getattr(loader.dataset, "augment", None)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
        "loader": loader.generator.get_state() if loader.generator is not None else None,
        # None: a pipeline this process never built (loader workers ran it) starts afresh from its seed.
        "augment": None if isinstance(augment, TrainAugment) and augment.pipeline is None else
        [(part.random_generator.bit_generator.state, part.py_random.getstate()) for part in augment_parts(augment)],
    }


def restore_rng_states(loader: DataLoader, states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    random.setstate(states["python"])
    if states["loader"] is not None and loader.generator is not None:
        loader.generator.set_state(states["loader"])
    augment = getattr(loader.dataset, "augment", None)
    if states["augment"] is None and isinstance(augment, TrainAugment):
        augment.forget()
        return
    parts = augment_parts(augment)
    if len(parts) != len(states["augment"] or []):
        raise UserError(f"the checkpoint's augmentation has {len(states['augment'])} random parts, this run's "
                        f"{len(parts)}: resume with the code the run was started with")
    for part, (generator, py_random) in zip(parts, states["augment"], strict=True):
        part.random_generator.bit_generator.state = generator  # in place: the parts may share generators
        part.py_random.setstate(py_random)


class RecordingWriter:
    """A file's write and flush for torch.save, keeping the first OSError: torch's zip writer swallows it and
    reports 'unexpected pos' instead, which would hide a full disk."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        self.handle.flush()


def save(data: dict[str, Any], path: Path) -> None:
    """Written whole or not at all; a full disk is one line (DiskFull, from atomic_path) and the previous file
    stays."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = RecordingWriter(handle)
        try:
            torch.save(data, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, read without running any code it may hold; one line when it is not one of ours."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused something: never loaded, never run
        raise UserError(f"{path} holds more than tensors and plain values ({one_line(error).split('.')[0]}): it "
                        f"was not written by this harness, and it is not loaded (loading it could run code)") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise UserError(f"{path} cannot be read as a checkpoint ({type(error).__name__}: {one_line(error)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a checkpoint of this harness (it holds a {type(data).__name__})")
    return data


# What each checkpoint holds at its top level, by type: anything else is refused with one line naming the file.
LAST_KEYS = {"step": int, "records": list, "fit": dict, "hooks": dict}
BEST_KEYS = {"epoch": int, "model": dict}


def checked_keys(data: dict[str, Any], path: Path, kinds: dict[str, type]) -> dict[str, Any]:
    for key, kind in kinds.items():
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UserError(f"{path}: {key!r} is {type(value).__name__}, expected {kind.__name__} (the file is "
                            f"damaged or not a checkpoint of this harness)")
    return data


def checked_format(data: dict[str, Any], path: Path, kinds: dict[str, type] | None = None) -> dict[str, Any]:
    if data.get("format") != FORMAT:
        raise UserError(f"{path} was written by another version of the harness (checkpoint format "
                        f"{data.get('format', 1)!r}, this one reads {FORMAT}): resume it with that version")
    return checked_keys(data, path, kinds or {})


def restored(path: Path, what: str, restore: Any, *args: Any) -> None:
    """restore(*args) (a load_state_dict), with a checkpoint that does not fit this run as one line naming the
    file: torch's 'size mismatch for fc.weight' when the classes or the model differ."""
    try:
        restore(*args)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} does not fit {what} ({type(error).__name__}: {one_line(error)})") from None


def is_better(record: dict[str, Any], best: float | None, key: str) -> bool:
    """The best checkpoint follows the metric NNI maximises; the earliest epoch wins ties (as best_record)."""
    return record.get(key) is not None and (best is None or record[key] > best)


class Checkpoint(Hook):
    """Writes last.pt (resumable) or best.pt after every epoch, and restores a resumed run from last.pt."""
    name = "checkpoint"

    def __init__(self, run: RunFolder, mode: str, key: str) -> None:
        if mode not in CHECKPOINT_MODES:
            raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {mode!r}")
        self.run, self.mode, self.key = run, mode, key
        self.best: float | None = None  # the best `key` so far: best.pt holds that epoch
        self.resumed: dict[str, Any] | None = None

    @property
    def last(self) -> Path:
        return self.run.path / LAST

    def read_last(self) -> dict[str, Any] | None:
        """last.pt's contents when the run folder has one (a kill or `nnictl resume`); the loop continues after it."""
        self.resumed = checked_format(load(self.last), self.last, LAST_KEYS) if self.last.is_file() else None
        return self.resumed

    def before_split(self) -> None:
        fit, data = self.loop.fit, self.resumed
        if data is None or fit.split.first_epoch == 1:
            return  # a fresh split: nothing to restore
        params = getattr(self.loop.setup, "params", None)  # a loop without a setup: the hooks' own tests
        model = params.model if params else type(fit.model).__name__
        what = f"this run's {model} with heads {fit.heads}: another model's or another data set's checkpoint"
        restored(self.last, what, fit.load_state_dict, data["fit"])
        restored(self.last, what, self.loop.load_hook_states, data["hooks"])
        self.run.clear_stop()
        self.run.write_metrics(self.loop.records)  # one line per completed step, whatever a kill left
        log.info("resumed after step %d from %s", data["step"], self.last)

    def record_epoch(self, record: dict[str, Any]) -> None:
        weights = self.loop.fit.state_dict()
        if self.mode == "best" and is_better(record, self.best, self.key):
            save({"format": FORMAT, "model": weights["model"], "average": weights["average"],
                  "epoch": record["epoch"], "record": record}, self.run.path / BEST)
        if is_better(record, self.best, self.key):
            self.best = record[self.key]
        if self.mode == "last":
            save({"format": FORMAT, "step": record["epoch"], "records": list(self.loop.records), "fit": weights,
                  "hooks": self.loop.hook_states()}, self.last)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]


def weights_for_prediction(folder: Path) -> tuple[dict[str, Any], int]:
    """(model state, epoch) of best.pt, else of last.pt: the averaged weights when the run kept an average (what
    its soft CSVs were predicted with), else the model's."""
    for name in (BEST, LAST):
        path = Path(folder) / name
        if path.is_file():
            data = checked_format(load(path), path, BEST_KEYS if name == BEST else LAST_KEYS)
            weights = data if name == BEST else data["fit"]
            epoch = data["epoch"] if name == BEST else data["step"]
            average = weights.get("average")
            try:
                return (average["weights"] if average else weights["model"]), epoch
            except (KeyError, TypeError):
                raise UserError(f"{path}: no model weights in it (the file is damaged or not a checkpoint of this "
                                f"harness)") from None
    raise UserError(f"{folder} holds no checkpoint ({BEST} or {LAST}): run the trial with --checkpoint best or last")
