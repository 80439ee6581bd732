"""Sharpness-aware minimisation (`--optimizer sam|asam`, `--sam_base`, `--sam_rho`): Foret et al., ICLR 2021, and
its adaptive form ASAM, Kwon et al., ICML 2021, written after David Samuel's davda54/sam (MIT licence).

Each step evaluates the batch twice. The first pass's gradient g (at the weights w) gives the ascent
e = rho T^2 g / ||T g|| (T = 1 for SAM, T = |w| elementwise for ASAM); the second pass, at w + e, gives the gradient
that the base optimiser (Adam, AdamW or SGD, fused or not) then applies at w. The second pass is the closure that
harness/train/passes.py gives `step()`: its forward and backward on the same (mixed) batch, with batch norm's
running statistics frozen, so they move once per step.

The wrapper shares the base optimiser's parameter groups (lr schedules reach the base) and its state: state_dict()
is the base's, whose groups also hold rho and adaptive, so last.pt resumes a SAM run like any other. The copy of w
taken during a step is not state: it lives only inside step().

fp16's grad scaler: the first pass's gradients are unscaled (`grad_scaler.unscale_(self)`) before the ascent, and
the scaler then steps the base optimiser on the second pass's gradients (`grad_scaler.step(self.base)`, which
unscales them and skips the step when they overflowed). The scaler keeps one record per optimiser object, so the
wrapper and its base are two records, and `update()` lowers the scale when either pass overflowed. A first pass that
overflowed gets no ascent (e = 0) rather than NaN weights."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

# The variants: ASAM's rho is larger because its ascent is scaled by the weights' magnitudes (davda54/sam's
# defaults, after the papers' CIFAR-10 settings).
VARIANTS: dict[str, dict[str, Any]] = {"sam": {"adaptive": False, "rho": 0.05}, "asam": {"adaptive": True, "rho": 2.0}}
EPSILON = 1e-12  # keeps the ascent finite when the gradient is 0


class SharpnessAware(torch.optim.Optimizer):
    needs_closure = True  # harness/train/passes.py: step(closure) re-evaluates the batch

    def __init__(self, params: Iterable[Any], base: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
                 rho: float, adaptive: bool) -> None:
        """base: builds the base optimiser over the given parameter groups."""
        if not rho > 0:
            raise ValueError(f"SAM's rho must be above 0, got {rho}")
        super().__init__(params, {"rho": rho, "adaptive": adaptive})
        self.base = base(self.param_groups)
        self.param_groups = self.base.param_groups  # one set of groups: the scheduler's lr is the base's lr
        self.defaults.update(self.base.defaults)

    @torch.no_grad()
    def _ascend(self, guard: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """w -> w + e(w); returns (the parameters moved, their weights before). guard: non-finite gradients (an
        fp16 overflow) give e = 0 instead of NaN weights."""
        groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]
        groups = [(group, params) for group, params in groups if params]
        # T g per group: the gradient, times |w| for ASAM
        scaled = [torch._foreach_mul(torch._foreach_abs(params), [p.grad for p in params]) if group["adaptive"]
                  else [p.grad for p in params] for group, params in groups]
        if not groups:
            return [], []
        # ||T g|| over every group
        norm = torch.linalg.vector_norm(torch.stack([n for ts in scaled for n in torch._foreach_norm(ts)]))
        moved = [p for _, params in groups for p in params]
        saved = torch._foreach_mul(moved, 1.0)  # copies: w comes back exactly, whatever w + e rounds to
        for (group, params), weighted in zip(groups, scaled):
            ascent = torch._foreach_mul(weighted, group["rho"] / (norm + EPSILON))  # rho T g / ||T g||
            if group["adaptive"]:
                torch._foreach_mul_(ascent, torch._foreach_abs(params))  # rho T^2 g / ||T g||
            if guard:  # an infinite norm makes every e 0, a NaN makes it NaN: either way 0 here
                ascent = [torch.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0) for e in ascent]
            torch._foreach_add_(params, ascent)
        return moved, saved

    def step(self, closure: Callable[[], torch.Tensor] | None = None,
             grad_scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
        """closure: the batch's forward and backward again (passes.py), returning its loss; the first pass's
        gradients must be in .grad already."""
        if closure is None:
            raise ValueError("SAM evaluates each batch twice: step() needs the closure that repeats the pass")
        if grad_scaler is not None:
            grad_scaler.unscale_(self)  # the ascent's direction from true gradients (and a record of overflow)
        params, saved = self._ascend(guard=grad_scaler is not None)
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
        if grad_scaler is not None:
            grad_scaler.step(self.base)
        else:
            self.base.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A state saved by the base optimiser alone (a PBT parent without SAM) has no rho: this run's stays."""
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups  # the base replaced its groups: share them again
        for group in self.param_groups:
            group.setdefault("rho", self.defaults["rho"])
            group.setdefault("adaptive", self.defaults["adaptive"])
