"""Optimizers and learning-rate schedules keyed by the names trial.py and the search space use.

The optimisers run torch's fused kernels (`fused=True`, `--fused_optimizer`): one pass over each parameter per
step instead of several elementwise ops per tensor, the same arithmetic. On a 2-core CPU the optimiser step of
resnet18 alone took 4.3 ms fused against 19-34 ms for Adam's default implementation (AdamW 4.4-5.1 against 37-41,
SGD with Nesterov momentum 3-4.5 against 9-10; one-off timings); whole training steps of the demo's models at 64 px,
batch 16, went 1.05x (resnet10t) and 1.09x (resnet18) faster (`python -m benchmarks.trial_speed optimizer`;
docs/speed.md). At 224 px the step is dominated by the model and the gain is within noise.

`sam` and `asam` wrap one of the base optimisers (`--sam_base`) in sharpness-aware minimisation
(harness/train/sam.py): two forward and backward passes per step, the second through step(closure)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from harness.errors import UserError
from harness.train.sam import VARIANTS, SharpnessAware


@dataclass(frozen=True)
class OptimizerSettings:
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.9           # sgd's
    fused: bool | None = True       # None: torch's default implementation
    sam_base: str = "adam"          # sam/asam: the base optimiser, one of BASE_OPTIMIZERS
    sam_rho: float = 0.0            # sam/asam: the ascent's radius; 0: the variant's default (sam.VARIANTS)


Params = Iterable[Any]  # tensors, or parameter groups (dicts), as torch's optimisers take them

BASE_OPTIMIZERS: dict[str, Callable[[Params, OptimizerSettings], torch.optim.Optimizer]] = {
    "adam": lambda params, s: torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay, fused=s.fused),
    "adamw": lambda params, s: torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay, fused=s.fused),
    "sgd": lambda params, s: torch.optim.SGD(params, lr=s.lr, weight_decay=s.weight_decay, momentum=s.momentum,
                                             nesterov=s.momentum > 0, fused=s.fused),
}


def sharpness_aware(variant: str) -> Callable[[Params, OptimizerSettings], torch.optim.Optimizer]:
    """SAM or ASAM (harness/train/sam.py) around the base optimiser --sam_base."""
    def build(params: Params, s: OptimizerSettings) -> torch.optim.Optimizer:
        return SharpnessAware(params, lambda groups: BASE_OPTIMIZERS[s.sam_base](groups, s),
                              rho=s.sam_rho or VARIANTS[variant]["rho"], adaptive=VARIANTS[variant]["adaptive"])
    return build


OPTIMIZERS: dict[str, Callable[[Params, OptimizerSettings], torch.optim.Optimizer]] = {
    **BASE_OPTIMIZERS, **{variant: sharpness_aware(variant) for variant in VARIANTS}}

# torch has fused kernels for these devices' floating-point parameters.
FUSED_DEVICES = ("cpu", "cuda")

SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int], LRScheduler]] = {
    # The original contest code's schedule: a tenth of the rate every 10 epochs.
    "step": lambda optimizer, epochs: torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1),
    "cosine": lambda optimizer, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
    "none": lambda optimizer, epochs: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
}


def create_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                     momentum: float = 0.9, fused: bool = True, sam_base: str = "adam",
                     sam_rho: float = 0.0) -> torch.optim.Optimizer:
    """`fused` asks for torch's fused kernels; parameters on another device, or not floating point, get the
    default implementation. sam_base and sam_rho are read by sam and asam only."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    if sam_base not in BASE_OPTIMIZERS:
        raise UserError(f"unknown sam_base {sam_base!r}: expected one of {', '.join(BASE_OPTIMIZERS)}")
    params = list(params)
    fused = fused and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    return OPTIMIZERS[name](params, OptimizerSettings(lr, weight_decay, momentum, fused or None, sam_base, sam_rho))


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """An optimiser that evaluates each batch again at other weights (SAM) steps with step(closure)."""
    return getattr(optimizer, "needs_closure", False)


def create_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int) -> LRScheduler:
    """Stepped once per epoch."""
    if name not in SCHEDULERS:
        raise UserError(f"unknown scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, epochs)
