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

from harness.train.passes import Criteria, Heads, Prediction, predict
from harness.train.precision import Precision


@dataclass
class Predictor:
    model: nn.Module
    heads: Heads
    normalize: Callable[[torch.Tensor], torch.Tensor]
    precision: Precision

    def __call__(self, loader: DataLoader, criteria: Criteria | None = None) -> Prediction:
        return predict(self.model, loader, self.heads, self.normalize, self.precision, criteria)
