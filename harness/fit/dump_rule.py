"""The dump rule: which epochs' predictions a trial keeps as soft CSVs, the ensemble's candidates.

Every rule first asks for train accuracy at `--dump_threshold` (0.9, the contest's), then:
- contest:  the train loss is below the last kept epoch's (the original contest code's rule);
- improved: the validation score NNI maximises is the best of the split so far;
- either:   one or the other (the default).
Under MixUp/CutMix the train loss is measured on mixed targets and often rises while the model improves, so the
contest rule alone can skip the best epoch; `either` keeps it a candidate. The rule runs per split (each K-fold
fold on its own)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.fit.hooks import Epoch, Hook


def should_dump(train_accuracy: float, train_loss: float, last_dump_loss: float | None, threshold: float) -> bool:
    """The original contest code's rule: a good epoch (train accuracy at the threshold) that improves on the last
    kept one."""
    return train_accuracy >= threshold and (last_dump_loss is None or train_loss < last_dump_loss)


def improves(score: float | None, best: float | None) -> bool:
    return score is not None and (best is None or score > best)


Rule = Callable[[Epoch, "DumpRule"], bool]
DUMP_RULES: dict[str, Rule] = {
    "contest": lambda epoch, rule: should_dump(epoch.train.accuracy, epoch.train.loss, rule.last_loss,
                                               rule.threshold),
    "improved": lambda epoch, rule: epoch.train.accuracy >= rule.threshold and improves(rule.score(epoch),
                                                                                       rule.best_score),
}
DUMP_RULES["either"] = lambda epoch, rule: DUMP_RULES["contest"](epoch, rule) or DUMP_RULES["improved"](epoch, rule)


class DumpRule(Hook):
    """Decides epoch.dump; the scheme's writer acts on it."""
    name = "dump_rule"

    def __init__(self, rule: str, threshold: float) -> None:
        self.decide, self.threshold = DUMP_RULES[rule], threshold
        self.last_loss: float | None = None   # the train loss of the split's last kept epoch
        self.best_score: float | None = None  # the split's best score so far (NNI's 'default')

    def score(self, epoch: Epoch) -> float | None:
        return epoch.record.get(self.loop.key)

    def before_split(self) -> None:
        self.last_loss = self.best_score = None

    def after_epoch(self, epoch: Epoch) -> None:
        epoch.dump = self.decide(epoch, self)
        if epoch.dump:
            self.last_loss = epoch.train.loss
        if improves(self.score(epoch), self.best_score):
            self.best_score = self.score(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"last_loss": self.last_loss, "best_score": self.best_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_loss, self.best_score = state["last_loss"], state.get("best_score")
