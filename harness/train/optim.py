"""Optimizers and learning-rate schedules keyed by the names trial.py and the search space use.

The optimisers run torch's fused kernels (`fused=True`, `--fused_optimizer`): one pass over each parameter per
step instead of several elementwise ops per tensor, the same arithmetic. On a 2-core CPU the optimiser step of
resnet18 alone took 4.3 ms fused against 19-34 ms for Adam's default implementation (AdamW 4.4-5.1 against 37-41,
SGD with Nesterov momentum 3-4.5 against 9-10; one-off timings); whole training steps of the demo's models at 64 px,
batch 16, went 1.05x (resnet10t) and 1.09x (resnet18) faster (`python -m benchmarks.trial_speed optimizer`;
docs/speed.md). At 224 px the step is dominated by the model and the gain is within noise."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.errors import UserError

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, weight_decay, momentum, fused: torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, fused=fused),
    "adamw": lambda params, lr, weight_decay, momentum, fused: torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, fused=fused),
    "sgd": lambda params, lr, weight_decay, momentum, fused: torch.optim.SGD(
        params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0, fused=fused),
}

# torch has fused kernels for these devices' floating-point parameters.
FUSED_DEVICES = ("cpu", "cuda")

SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int], LRScheduler]] = {
    # The original contest code's schedule: a tenth of the rate every 10 epochs.
    "step": lambda optimizer, epochs: torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1),
    "cosine": lambda optimizer, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
    "none": lambda optimizer, epochs: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
}


def create_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                     momentum: float = 0.9, fused: bool = True) -> torch.optim.Optimizer:
    """`fused` asks for torch's fused kernels; parameters on another device, or not floating point, get the
    default implementation."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    params = list(params)
    fused = fused and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    return OPTIMIZERS[name](params, lr, weight_decay, momentum, fused or None)


def create_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int) -> LRScheduler:
    """Stepped once per epoch."""
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, epochs)
