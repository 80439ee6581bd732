"""The one prediction function of a run: every soft CSV of a dump, validation and eval alike, and the per-epoch
validation scores come from the same Predictor with the same options, so what the ensemble's selection judges on
the validation CSV is what made the eval CSV beside it. Options that change predictions (test-time augmentation,
averaged weights) belong here and nowhere else."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.train.averaging import WeightAverage
from harness.train.passes import Criteria, Heads, Prediction, predict
from harness.train.precision import Precision
from harness.train.tta import AugmentedViews


@dataclass
class Predictor:
    model: nn.Module
    heads: Heads
    normalize: Callable[[torch.Tensor], torch.Tensor]
    precision: Precision
    tta: str = "none"  # a key of harness.train.tta.TTA
    average: WeightAverage | None = None  # --ema_decay: when set, its averaged weights are what the run predicts
    tta_merge: str = "mean"  # a key of harness.train.tta.MERGES: how the views' predictions become one

    def __call__(self, loader: DataLoader, criteria: Criteria | None = None) -> Prediction:
        return self._predict(self.average.module if self.average is not None else self.model, loader, criteria)

    def of_model(self, loader: DataLoader, criteria: Criteria | None = None) -> Prediction:
        """The trained weights themselves, not their average (the raw_val_* scores beside an average's)."""
        return self._predict(self.model, loader, criteria)

    def _predict(self, model: nn.Module, loader: DataLoader, criteria: Criteria | None) -> Prediction:
        # model.eval() in predict reaches the wrapped model: the wrapper holds it as a submodule.
        return predict(AugmentedViews(model, self.tta, self.tta_merge), loader, self.heads, self.normalize,
                       self.precision, criteria)
