"""The one epoch loop: every split a validation scheme yields (a holdout run is one split, K-fold has K) trains
here, epoch by epoch, with the techniques acting through hooks (harness/fit/hooks.py) in their stated order.

    for each split (from where a resumed run stopped):
        the split's fit (model, optimiser, loaders, predictor) -> before_split
        each epoch: train (after_step after every optimiser step), validate -> after_epoch (decide, write)
                    -> the scheduler steps -> record_epoch (checkpoint, then the sinks; never interrupted)
        after_split
    the scheme's final result -> after_train"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from torch import nn

from harness.fit.hooks import Epoch, Hook, in_order
from harness.fit.setup import Fit, FitSetup, Split
from harness.outputs.records import epoch_record
from harness.signals import StopSignal
from harness.train.passes import TrainingDiverged

log = logging.getLogger("trial")


class EpochLoop:
    def __init__(self, setup: FitSetup, scheme: Any, stop: StopSignal, key: str) -> None:
        self.setup, self.scheme, self.stop, self.key = setup, scheme, stop, key
        self.records: list[dict[str, Any]] = []  # one per completed step: what metrics.jsonl holds
        self.fit: Fit | None = None              # the split in training
        self.hooks: list[Hook] = []
        self.stepping: list[Hook] = []

    def attach(self, hooks: Sequence[Hook]) -> None:
        """The run's hooks, put in ORDER; each gets this loop as `hook.loop`."""
        self.hooks = in_order(hooks)
        for hook in self.hooks:
            hook.loop = self
        # Only the hooks that act after a step are called in the hot path.
        self.stepping = [hook for hook in self.hooks if type(hook).after_step is not Hook.after_step]

    def hook(self, name: str) -> Hook | None:
        return next((hook for hook in self.hooks if hook.name == name), None)

    def call(self, phase: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, phase)(*args)

    def hook_states(self) -> dict[str, dict[str, Any]]:
        """What the checkpoint keeps of the hooks."""
        return {hook.name: hook.state_dict() for hook in self.hooks}

    def load_hook_states(self, states: dict[str, dict[str, Any]]) -> None:
        for hook in self.hooks:
            if hook.name in states:
                hook.load_state_dict(states[hook.name])

    def run(self) -> dict[str, Any] | None:
        """Trains every split; returns the final record (reported to NNI by the sinks), None when there is none."""
        done = self.resume()
        removed = self.scheme.discard_unrecorded(done)
        if removed:
            log.warning("removed %s: soft CSVs of epochs that the run's records and checkpoint do not have (a kill "
                        "between a dump and its checkpoint, or an earlier attempt of this trial)", ", ".join(removed))
        try:
            for split in self.scheme.splits(done):
                self.train_split(split)
        except TrainingDiverged as error:
            best = self.scheme.partial(self.records, self.key)
            self.call("after_train", best)
            reported = f"best epoch {best['epoch']} reported as the final result" if best else "no final result"
            raise TrainingDiverged(f"{error} in epoch {len(self.records) + 1}: the trial stopped ({reported}); "
                                   f"try a lower --lr (it was {self.setup.params.lr:g})") from None
        with self.stop.protect():
            best = self.scheme.finish(self.records, self.key)
        self.call("after_train", best)
        return best

    def resume(self) -> int:
        """The steps a resumed run completed before (0 for a new run): the checkpoint hook reads last.pt, and the
        scheme continues after them; the split in progress is restored at its before_split."""
        checkpoint = self.hook("checkpoint")
        resumed = checkpoint.read_last() if checkpoint is not None else None
        if resumed is None:
            return 0
        self.records[:] = resumed["records"]
        return resumed["step"]

    def train_split(self, split: Split) -> None:
        self.fit = self.setup.fit(split)
        self.call("before_split")
        for number in range(split.first_epoch, self.setup.params.epochs + 1):
            self.train_epoch(number)
        self.call("after_split")
        self.fit = None  # freed before the next split's model is made: one model on the device at a time

    def after_step(self, model: nn.Module) -> None:
        for hook in self.stepping:
            hook.after_step()

    def train_epoch(self, number: int) -> None:
        fit, started = self.fit, time.perf_counter()
        lr = fit.optimizer.param_groups[0]["lr"]
        result = fit.train_epoch(number, self.setup.params.epochs, self.after_step if self.stepping else None)
        val = fit.validate()
        step = fit.split.offset + number
        epoch = Epoch(number, step, result, val, epoch_record(step, result, val, fit.loaders.val_labels, fit.heads, lr))
        self.call("after_epoch", epoch)
        epoch.record.update(dumped=epoch.dump, seconds=time.perf_counter() - started)
        fit.scheduler.step()
        with self.stop.protect():  # the record, its checkpoint and its sinks: all or none of them
            self.records.append(epoch.record)
            self.call("record_epoch", epoch.record)
