"""Losses keyed by the search space's criterion names. Each takes (logits [B, K], targets) -> scalar, where targets
are class indices [B] or probabilities [B, K] (MixUp/CutMix's mixed targets, harness/train/mixing.py); a model with
several heads gets one per head (trial.py sums them). A criterion may mix several: `focal+f1` with `--loss_weights
0.6,0.4` is 0.6 focal + 0.4 F1, one criterion per head.

Every loss takes optional per-class weights (`--class_weights`, harness/train/class_balance.py). A one-hot target
gives exactly the value of its hard label, weights included (tests/test_losses.py), so a batch that MixUp leaves
unmixed costs what it would cost without MixUp. Weighted losses are weighted means: sum_i sum_k w_k t_ik l_ik over
sum_i sum_k w_k t_ik (t the target before smoothing), which for hard labels is torch's own
`CrossEntropyLoss(weight=...)` normalisation (over the weights of the batch's labels, not the batch size), so the
loss keeps its scale whatever the weights and the lr needs no retuning."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import UserError


def as_probabilities(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices [B] as one-hot rows; probability rows [B, K] as they are (float32)."""
    if targets.dim() == 1:
        return F.one_hot(targets.long(), num_classes).float()
    if targets.dim() != 2 or targets.shape[1] != num_classes:
        raise ValueError(f"targets must be [B] class indices or [B, {num_classes}] probabilities, got "
                         f"{tuple(targets.shape)}")
    return targets.float()


class _WeightedLoss(nn.Module):
    """Holds the optional per-class weights as a buffer, so `.to(device)` moves them with the loss."""

    def __init__(self, weight: torch.Tensor | None) -> None:
        super().__init__()
        if weight is not None and (weight.dim() != 1 or (weight < 0).any()):
            raise ValueError("class weights must be one non-negative number per class")
        self.register_buffer("weight", None if weight is None else weight.float())

    def weighted_mean(self, per_class: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """per_class: [B, K] loss terms already multiplied by their (possibly smoothed) target; target: [B, K] the
        unsmoothed target, whose weighted mass normalises."""
        if self.weight is None:
            return per_class.sum(1).mean()
        return (per_class * self.weight).sum() / (target * self.weight).sum().clamp_min(1e-12)


class CrossEntropy(_WeightedLoss):
    """Cross-entropy on a probability target, with torch's label smoothing: the target keeps 1 - s of its mass and
    s / K goes to each of the K classes (for a hard label: 1 - s + s / K on the true class). Written here rather
    than nn.CrossEntropyLoss because torch's probability-target path divides by the batch size even with weights,
    so a one-hot target would not cost what its hard label costs."""

    def __init__(self, num_classes: int, smoothing: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight)
        if not 0 <= smoothing < 1:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.num_classes, self.smoothing = num_classes, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = as_probabilities(targets, self.num_classes)
        smoothed = target * (1 - self.smoothing) + self.smoothing / self.num_classes
        return self.weighted_mean(-smoothed * F.log_softmax(logits.float(), dim=1), target)


class FocalLoss(_WeightedLoss):
    """Lin et al. 2017: cross-entropy scaled by (1 - p)^gamma, so easy images weigh less. On a probability target
    each class's term is t_k (1 - p_k)^gamma (-log p_k), which is the hard-label loss for a one-hot t; the class
    weights are the paper's per-class alpha."""

    def __init__(self, num_classes: int, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight)
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        self.num_classes, self.gamma = num_classes, gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        target = as_probabilities(targets, self.num_classes)
        log_p = F.log_softmax(logits.float(), dim=1)
        return self.weighted_mean(-target * (1 - log_p.exp()) ** self.gamma * log_p, target)


class F1Loss(_WeightedLoss):
    """1 - macro-F1 computed on softmax probabilities instead of hard predictions, so that it has gradients. A
    probability target counts as fractional true members of each class. Class weights make it a weighted mean of
    the per-class F1s; macro-F1 already counts every class alike whatever its size, so weights tilt it further
    toward the classes they favour."""

    def __init__(self, num_classes: int, epsilon: float = 1e-7, weight: torch.Tensor | None = None) -> None:
        super().__init__(weight)
        if num_classes < 2:
            raise ValueError(f"F1 loss needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        truth = as_probabilities(targets, self.num_classes)
        true_pos = (probs * truth).sum(0)
        # 2tp + fp + fn = predicted mass + true count, per class.
        f1 = 2 * true_pos / (probs.sum(0) + truth.sum(0) + self.epsilon)
        if self.weight is None:
            return 1 - f1.mean()
        return 1 - (f1 * self.weight).sum() / self.weight.sum().clamp_min(1e-12)


LossFactory = Callable[[int, "torch.Tensor | None"], nn.Module]
LOSSES: dict[str, LossFactory] = {
    "cross_entropy": lambda num_classes, weight: CrossEntropy(num_classes, weight=weight),
    "focal": lambda num_classes, weight: FocalLoss(num_classes, gamma=2.0, weight=weight),
    # torch's smoothing: 1 - 0.1 on the true class and 0.1 / K spread over all K classes (the true one included),
    # so the true class gets 0.9 + 0.1 / K.
    "label_smoothing": lambda num_classes, weight: CrossEntropy(num_classes, smoothing=0.1, weight=weight),
    "f1": lambda num_classes, weight: F1Loss(num_classes, weight=weight),
}


MIX = "+"  # 'focal+f1': a weighted sum of registry losses (--loss_weights)


class LossMix(nn.Module):
    """A weighted sum of losses, each given the same logits and targets (class weights and probability targets
    reach every part)."""

    def __init__(self, parts: Sequence[nn.Module], weights: Sequence[float]) -> None:
        super().__init__()
        if len(parts) != len(weights) or not parts:
            raise ValueError("a loss mix needs one weight per part and at least one part")
        self.parts = nn.ModuleList(parts)
        self.weights = tuple(float(w) for w in weights)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sum(w * part(logits, targets) for w, part in zip(self.weights, self.parts))


def loss_mix(criterion: str, loss_weights: str = "") -> tuple[list[str], list[float]]:
    """'focal+f1', '0.6,0.4' -> (['focal', 'f1'], [0.6, 0.4]): the registry names and their weights, scaled to sum
    to 1 (so the loss keeps its scale, and 3,2 means 0.6,0.4); equal weights when loss_weights is empty."""
    parts = criterion.split(MIX)
    unknown = next((part for part in parts if part not in LOSSES), None)
    if unknown is not None:
        raise UserError(f"unknown criterion {unknown!r}{f' in {criterion!r}' if len(parts) > 1 else ''}: expected "
                        f"one of {', '.join(LOSSES)}, or several joined by '{MIX}' (e.g. focal{MIX}f1)")
    if len(set(parts)) < len(parts):
        raise UserError(f"criterion {criterion!r} names a loss twice: give each part once and weigh it with "
                        f"--loss_weights")
    if not loss_weights.strip():
        return parts, [1 / len(parts)] * len(parts)
    try:
        weights = [float(text) for text in loss_weights.split(",")]
    except ValueError:
        raise UserError(f"loss_weights {loss_weights!r}: expected comma-separated numbers, e.g. 0.6,0.4") from None
    if len(weights) != len(parts):
        raise UserError(f"loss_weights {loss_weights!r} has {len(weights)} weight{'s' * (len(weights) > 1)} for the "
                        f"{len(parts)} part{'s' * (len(parts) > 1)} of criterion {criterion!r}: give one per part")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise UserError(f"loss_weights {loss_weights!r}: weights must be finite, 0 or more, and not all 0")
    return parts, [w / sum(weights) for w in weights]


def create_loss(name: str, num_classes: int, weight: Sequence[float] | torch.Tensor | None = None,
                loss_weights: str = "") -> nn.Module:
    """name: a LOSSES key, or several joined by '+' and weighted by loss_weights ('0.6,0.4'; empty: equal).
    weight: one number per class (None: every class counts alike)."""
    parts, weights = loss_mix(name, loss_weights)
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if len(weight) != num_classes:
            raise ValueError(f"{len(weight)} class weights for {num_classes} classes")
    if len(parts) == 1:
        return LOSSES[parts[0]](num_classes, weight)
    return LossMix([LOSSES[part](num_classes, weight) for part in parts], weights)
