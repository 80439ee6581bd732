"""Test-time augmentation: a registry of view lists keyed by the `--tta` strings, and a wrapper that averages the
views' probabilities (never their logits) per head. The wrapper returns the log of the averaged probabilities, so
every caller (softmax for the CSVs, the losses for validation) sees the averaged prediction itself:
softmax(log p) = p and cross-entropy on log p is the loss of p."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

View = Callable[[torch.Tensor], torch.Tensor]


def _identity(images: torch.Tensor) -> torch.Tensor:
    return images


def _hflip(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=(3,))


TTA: dict[str, tuple[View, ...]] = {
    "none": (_identity,),
    "hflip": (_identity, _hflip),
}


def average_probabilities(outputs: list[torch.Tensor | Mapping[str, torch.Tensor]]
                          ) -> torch.Tensor | dict[str, torch.Tensor]:
    """The log of the mean softmax over views, per head; one tensor in, one tensor out."""
    def mean_log(logits: list[torch.Tensor]) -> torch.Tensor:
        probs = torch.stack([torch.softmax(value.float(), dim=1) for value in logits]).mean(0)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    if isinstance(outputs[0], torch.Tensor):
        return mean_log(outputs)
    return {task: mean_log([output[task] for output in outputs]) for task in outputs[0]}


class AugmentedViews(nn.Module):
    """The model seen through every view of a TTA policy; with one view it is the model itself."""

    def __init__(self, model: nn.Module, policy: str) -> None:
        super().__init__()
        if policy not in TTA:
            raise ValueError(f"tta must be one of {', '.join(TTA)}, got {policy!r}")
        self.model = model
        self.views = TTA[policy]

    def forward(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        if len(self.views) == 1:
            return self.model(self.views[0](images))
        return average_probabilities([self.model(view(images)) for view in self.views])
