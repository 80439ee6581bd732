"""Losses keyed by the search space's criterion names. Each takes (logits [B, K], targets [B]) -> scalar; a model
with several heads gets one per head (trial.py sums them)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import UserError


class FocalLoss(nn.Module):
    """Lin et al. 2017: cross-entropy scaled by (1 - p_true)^gamma, so easy images weigh less."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
        return (-(1 - log_p.exp()) ** self.gamma * log_p).mean()


class F1Loss(nn.Module):
    """1 - macro-F1 computed on softmax probabilities instead of hard predictions, so that it has gradients."""

    def __init__(self, num_classes: int, epsilon: float = 1e-7) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"F1 loss needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        truth = F.one_hot(targets, self.num_classes).to(probs.dtype)
        true_pos = (probs * truth).sum(0)
        # 2tp + fp + fn = predicted mass + true count, per class.
        f1 = 2 * true_pos / (probs.sum(0) + truth.sum(0) + self.epsilon)
        return 1 - f1.mean()


LOSSES: dict[str, Callable[[int], nn.Module]] = {
    "cross_entropy": lambda num_classes: nn.CrossEntropyLoss(),
    "focal": lambda num_classes: FocalLoss(gamma=2.0),
    # torch's own: the target keeps 1 - 0.1 on the true class and 0.1 / K spread over all K classes (the true one
    # included), so the true class gets 0.9 + 0.1 / K.
    "label_smoothing": lambda num_classes: nn.CrossEntropyLoss(label_smoothing=0.1),
    "f1": lambda num_classes: F1Loss(num_classes),
}


def create_loss(name: str, num_classes: int) -> nn.Module:
    try:
        factory = LOSSES[name]
    except KeyError:
        raise UserError(f"unknown criterion {name!r}: expected one of {', '.join(LOSSES)}") from None
    return factory(num_classes)
