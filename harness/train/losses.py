"""Losses keyed by the search space's criterion names. Each takes (logits [B, K], targets) -> scalar, where targets
are class indices [B] or probabilities [B, K] (MixUp/CutMix's mixed targets, harness/train/mixing.py); a model with
several heads gets one per head (trial.py sums them).

Every loss takes optional per-class weights (`--class_weights`, harness/train/class_balance.py). A one-hot target
gives exactly the value of its hard label, weights included (tests/test_losses.py), so a batch that MixUp leaves
unmixed costs what it would cost without MixUp. Weighted losses are weighted means: sum_i sum_k w_k t_ik l_ik over
sum_i sum_k w_k t_ik (t the target before smoothing), which for hard labels is torch's own
`CrossEntropyLoss(weight=...)` normalisation (over the weights of the batch's labels, not the batch size), so the
loss keeps its scale whatever the weights and the lr needs no retuning."""
from __future__ import annotations

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


def create_loss(name: str, num_classes: int, weight: Sequence[float] | torch.Tensor | None = None) -> nn.Module:
    """weight: one number per class (None: every class counts alike)."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise UserError(f"unknown criterion {name!r}: expected one of {', '.join(LOSSES)}") from None
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if len(weight) != num_classes:
            raise ValueError(f"{len(weight)} class weights for {num_classes} classes")
    return factory(num_classes, weight)
