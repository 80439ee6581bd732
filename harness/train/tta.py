"""Test-time augmentation: a registry of view lists keyed by the `--tta` strings (ttach's vocabulary: flips, the
dihedral group d4, five crops, scales), and a wrapper that merges the views' predictions per head, by the mean of
their probabilities (never of their logits) or by their geometric mean (`--tta_merge mean|gmean`).

The wrapper returns log-probabilities of the merged prediction, up to a constant per row, so every caller (softmax
for the CSVs, the losses for validation) sees the merged prediction itself: softmax(log p) = p, and cross-entropy on
them is the loss of p. For the geometric mean the wrapper returns the mean of the views' log-probabilities, which
softmax renormalises.

The inputs are squares (--img_size), so every view keeps the input's shape except `scales`, whose resized views the
models' global pooling takes at any size."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

View = Callable[[torch.Tensor], torch.Tensor]
FIVE_CROP_SCALE = 0.875  # each crop's side, as a share of the image's (then resized back up)
SCALES = (0.875, 1.125)  # beside the image itself


def _identity(images: torch.Tensor) -> torch.Tensor:
    return images


def _hflip(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=(3,))


def _vflip(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=(2,))


def _hvflip(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=(2, 3))


def _rotation(quarters: int, mirrored: bool) -> View:
    """One of the 8 symmetries of a square: a rotation by quarters * 90 degrees, after a mirror if `mirrored`."""
    def view(images: torch.Tensor) -> torch.Tensor:
        return torch.rot90(_hflip(images) if mirrored else images, quarters, dims=(2, 3))
    return view


def _crop(where: str, scale: float = FIVE_CROP_SCALE) -> View:
    """A crop of `scale` of each side at a corner or the centre, resized back to the image's size."""
    def view(images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[2:]
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        top = {"t": 0, "b": height - h, "c": (height - h) // 2}[where[0]]
        left = {"l": 0, "r": width - w, "c": (width - w) // 2}[where[1]]
        crop = images[:, :, top:top + h, left:left + w]
        return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
    return view


def _resized(scale: float) -> View:
    """The image resized by `scale` (antialiased when it shrinks), fed to the model at that size."""
    def view(images: torch.Tensor) -> torch.Tensor:
        size = [max(1, round(side * scale)) for side in images.shape[2:]]
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return view


TTA: dict[str, tuple[View, ...]] = {
    "none": (_identity,),
    "hflip": (_identity, _hflip),
    "vflip": (_identity, _vflip),
    "flips": (_identity, _hflip, _vflip, _hvflip),
    "d4": tuple(_rotation(quarters, mirrored) for mirrored in (False, True) for quarters in range(4)),
    "five_crop": tuple(_crop(where) for where in ("cc", "tl", "tr", "bl", "br")),
    "scales": (_identity, *(_resized(scale) for scale in SCALES)),
}


def _mean(logits: list[torch.Tensor]) -> torch.Tensor:
    probs = torch.stack([torch.softmax(value.float(), dim=1) for value in logits]).mean(0)
    return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))


def _gmean(logits: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([torch.log_softmax(value.float(), dim=1) for value in logits]).mean(0)


# How the views' predictions become one: log of the mean probability, or the mean log-probability.
MERGES: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]] = {"mean": _mean, "gmean": _gmean}


def merge_views(outputs: list[torch.Tensor | Mapping[str, torch.Tensor]], merge: str = "mean"
                ) -> torch.Tensor | dict[str, torch.Tensor]:
    """The views' outputs merged per head; one tensor in, one tensor out."""
    combine = MERGES[merge]
    if isinstance(outputs[0], torch.Tensor):
        return combine(outputs)
    return {task: combine([output[task] for output in outputs]) for task in outputs[0]}


def average_probabilities(outputs: list[torch.Tensor | Mapping[str, torch.Tensor]]
                          ) -> torch.Tensor | dict[str, torch.Tensor]:
    """The log of the mean softmax over views, per head."""
    return merge_views(outputs, "mean")


class AugmentedViews(nn.Module):
    """The model seen through every view of a TTA policy; with one view it is the model itself."""

    def __init__(self, model: nn.Module, policy: str, merge: str = "mean") -> None:
        super().__init__()
        if policy not in TTA:
            raise ValueError(f"tta must be one of {', '.join(TTA)}, got {policy!r}")
        if merge not in MERGES:
            raise ValueError(f"tta_merge must be one of {', '.join(MERGES)}, got {merge!r}")
        self.model = model
        self.views = TTA[policy]
        self.merge = merge

    def forward(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        if len(self.views) == 1:
            return self.model(self.views[0](images))
        return merge_views([self.model(view(images)) for view in self.views], self.merge)
