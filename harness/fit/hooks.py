"""The seam every per-epoch and per-split technique goes through: a Hook, called by the epoch loop at fixed points,
holding its own state (which the checkpoint gathers), in one stated order (`ORDER`).

After detectron2's HookBase and Lightning's Callback. A hook reads what it needs from `self.loop` (set when the loop
takes it): the loop's records and, during a split, `self.loop.fit` (the split's model, optimiser, loaders and
predictor). The phases:

    before_split()          a split's fit exists, nothing trained yet (PBT's parent loads here, last.pt restores)
    after_step()            after every optimiser step: the hot path, keep it cheap (the weight average's update)
    after_epoch(epoch)      the epoch trained and validated; each hook adds to epoch.record or decides (epoch.dump)
    record_epoch(record)    the finished record: persisted, all under one stop-protection (checkpoint, sinks)
    after_split()           the split's last epoch is done (PBT's member is saved, the final model timed)
    after_train(best)       the run's final result (None when there is none)

A new technique is one Hook subclass placed in ORDER (and in trial.py's list), or one validation scheme
(harness/validation/)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the loop imports this module; hooks only need the names for their types
    from harness.fit.loop import EpochLoop
    from harness.train.passes import Prediction, TrainResult

# The order hooks run in, by name, and why (a hook not listed here may not be used):
ORDER = (
    "dump_rule",    # decides whether the epoch is kept: the writer acts on it
    "average",      # the raw weights' scores beside the average's, before the record is written anywhere
    "writer",       # the scheme's outputs of the epoch: a soft-CSV pair (holdout) or a fold's part (K-fold)
    "population",   # PBT: starts a split from the parent's weights; saves the member after it
    "checkpoint",   # after every write of the epoch, before the sinks: a record NNI received has its checkpoint;
                    # restores (on resume) after every hook above has reset its state for the split
    "sinks",        # metrics.jsonl, NNI, the log line, TensorBoard
    "cost",         # times the final model once its split is done: every write of the run comes first, so a stop
                    # during the measure loses nothing but cost.json
)


@dataclass
class Epoch:
    """One trained and validated epoch of a split, as the hooks see it."""
    number: int                      # within the split, from 1
    step: int                        # over the run (K-fold: (fold - 1) * epochs + number): metrics.jsonl's 'epoch'
    train: TrainResult
    val: Prediction | None
    record: dict[str, Any] = field(default_factory=dict)  # metrics.jsonl's line; hooks add to it
    dump: bool = False               # the dump rule's decision: keep this epoch's predictions


class Hook:
    name = ""  # its place in ORDER
    loop: EpochLoop

    def before_split(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self, epoch: Epoch) -> None:
        pass

    def record_epoch(self, record: dict[str, Any]) -> None:
        pass

    def after_split(self) -> None:
        pass

    def after_train(self, best: dict[str, Any] | None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs back of this hook ({}: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def in_order(hooks: Sequence[Hook]) -> list[Hook]:
    """The hooks sorted by ORDER; an unknown or repeated name is a programming error, caught at once."""
    names = [hook.name for hook in hooks]
    unknown = [name for name in names if name not in ORDER]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"hooks must have distinct names from {ORDER}, got {names}")
    return sorted(hooks, key=lambda hook: ORDER.index(hook.name))
