"""The dump rule: which epochs' predictions a trial keeps as soft CSVs for the ensemble."""
from __future__ import annotations

from typing import Any

from harness.fit.hooks import Epoch, Hook


def should_dump(train_accuracy: float, train_loss: float, last_dump_loss: float | None, threshold: float) -> bool:
    """The original contest code's rule: a good epoch (train accuracy at the threshold) that improves on the last
    kept one."""
    return train_accuracy >= threshold and (last_dump_loss is None or train_loss < last_dump_loss)


class DumpRule(Hook):
    """Decides epoch.dump; the scheme's writer acts on it. The rule runs per split (each K-fold fold on its own)."""
    name = "dump_rule"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.last_loss: float | None = None  # the train loss of the split's last kept epoch

    def before_split(self) -> None:
        self.last_loss = None

    def after_epoch(self, epoch: Epoch) -> None:
        epoch.dump = should_dump(epoch.train.accuracy, epoch.train.loss, self.last_loss, self.threshold)
        if epoch.dump:
            self.last_loss = epoch.train.loss

    def state_dict(self) -> dict[str, Any]:
        return {"last_loss": self.last_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_loss = state["last_loss"]
