"""Optimizers and learning-rate schedules keyed by the names trial.py and the search space use."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.errors import UserError

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, weight_decay, momentum: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
    "adamw": lambda params, lr, weight_decay, momentum: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay),
    "sgd": lambda params, lr, weight_decay, momentum: torch.optim.SGD(
        params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0),
}

SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int], LRScheduler]] = {
    # The original contest code's schedule: a tenth of the rate every 10 epochs.
    "step": lambda optimizer, epochs: torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1),
    "cosine": lambda optimizer, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
    "none": lambda optimizer, epochs: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
}


def create_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                     momentum: float = 0.9) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr, weight_decay, momentum)


def create_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int) -> LRScheduler:
    """Stepped once per epoch."""
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, epochs)
