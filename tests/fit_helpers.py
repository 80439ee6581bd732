"""A real Fit and EpochLoop around a tiny model, for testing hooks without training anything."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.data.batches import ImageSet, make_loader
from harness.data.loaders import Loaders
from harness.fit.hooks import Hook
from harness.fit.loop import EpochLoop
from harness.fit.setup import Fit, Split
from harness.signals import StopSignal
from harness.train.averaging import WeightAverage
from harness.train.precision import Precision
from harness.train.predictor import Predictor


def tiny_fit(model: nn.Module, average: WeightAverage | None = None, first_epoch: int = 1) -> Fit:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(ImageSet(np.zeros((4, 1, 1, 1), np.uint8), np.arange(4), np.zeros(4)), 2, True, 0, 0,
                         False)
    loaders = Loaders(train=loader, val=None, eval=None, val_ids=[], val_labels=np.zeros((0, 1)), eval_ids=[])
    predictor = Predictor(model, {"multi": 1}, None, Precision(torch.device("cpu")), "none", average)
    return Fit(Split(1, np.arange(4), np.arange(0), first_epoch=first_epoch), {"multi": 1}, model, {}, optimizer,
               torch.optim.lr_scheduler.StepLR(optimizer, 1), None, loaders, predictor, None)


def loop_with(hooks: list[Hook], fit: Fit | None = None, records: list[dict] | None = None) -> EpochLoop:
    """An EpochLoop holding `fit` as its split in training, the hooks attached, no setup or scheme."""
    loop = EpochLoop(setup=None, scheme=None, stop=StopSignal(), key="val_acc")
    loop.attach(hooks)
    loop.fit = fit
    loop.records[:] = records or []
    return loop
