"""Weight averaging (`--ema_decay D`, 0 off): an exponential moving average of the model's weights and buffers,
updated after every optimiser step by timm's ModelEmaV3, on the model's device.

The decay warms up (timm's use_warmup with power 3/4, which timm's notes suggest for shorter runs: the decay at
step s is 1 - (1 + s)^(-3/4), capped at D). Without it, a run of a few thousand steps would keep mostly its early,
barely trained weights at D = 0.9998 (0.9998^2000 = 0.67 of the average). With it the average spans roughly the
last (1 + s)^(3/4) steps and reaches D after (1 - D)^(-4/3) steps: 460 for 0.99, 10k for 0.999, 86k for 0.9998.

When it is on, the average is what the run predicts with: validation scores, soft CSVs, best.pt and
`python -m harness.predict` (README: "Contest techniques"). The step count lives in the checkpoint with the
averaged weights, so a resumed run goes on averaging as an uninterrupted one."""
from __future__ import annotations

from typing import Any

from torch import nn

from harness.fit.hooks import Epoch, Hook
from harness.outputs.records import raw_scores

WARMUP_POWER = 3 / 4


def ema_enabled(decay: float) -> bool:
    return decay > 0


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        from timm.utils import ModelEmaV3

        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=WARMUP_POWER)
        self.steps = 0

    @property
    def module(self) -> nn.Module:
        """The averaged model (always in eval mode: it is only ever predicted with)."""
        return self.ema.module

    def update(self, model: nn.Module) -> None:
        """After an optimiser step."""
        self.steps += 1
        self.ema.update(model, step=self.steps)

    def restart_from(self, model: nn.Module) -> None:
        """The average starts again at the model's weights (PBT's inherited weights, an old checkpoint)."""
        self.ema.set(model)
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"])
        self.steps = state["steps"]


class AverageHook(Hook):
    """--ema_decay: updates the split's average after every optimiser step (the fit setup makes the average, and
    the predictor predicts with it), and records the trained weights' own scores beside the average's."""
    name = "average"

    def after_step(self) -> None:
        fit = self.loop.fit
        fit.average.update(fit.model)

    def after_epoch(self, epoch: Epoch) -> None:
        fit = self.loop.fit
        if fit.loaders.val:
            epoch.record.update(raw_scores(fit.predictor.of_model(fit.loaders.val, fit.criteria),
                                           fit.loaders.val_labels, fit.heads))
