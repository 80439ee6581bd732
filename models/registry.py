"""The model registry: search-space names -> builders sharing one signature.

The contract a builder keeps (every entry, and timm's fallback):

    builder(heads: Mapping[str, int], pretrained: bool, weights: str) -> nn.Module

- `heads` describes the outputs: task name -> class count, in order, e.g. {"multi": 18} for one head or
  {"mask": 3, "gender": 2, "age": 3} for one backbone with three heads.
- With one head, forward(images [B, 3, H, W]) returns its logits [B, K]; with several, a dict task -> logits
  [B, K_task] holding every key of `heads` (see `MultiHead`); harness/train/passes.py reads either form.
- `pretrained` starts from ImageNet weights, from the local file `weights` when it is not "" (for machines that
  cannot download); only the classifier may differ from the file, since it is sized for the heads.
- A failure the user can fix raises ModelError with a one-line message naming the model and what to do.

Any other timm model name works too (models/__init__.py falls back to timm's own registry), so a user can search
over architectures never listed here; nothing outside these two registries can be chosen from a config.
This package imports nothing from harness/: the harness uses models, never the reverse."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

Heads = Mapping[str, int]
ModelBuilder = Callable[[Heads, bool, str], nn.Module]

MODELS: dict[str, ModelBuilder] = {}


class ModelError(Exception):
    """A model that cannot be built as asked (unknown name, weights missing or not fitting): one line for the user."""


def register(name: str, builder: ModelBuilder) -> ModelBuilder:
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    MODELS[name] = builder
    return builder


def check_heads(heads: Heads) -> None:
    if not heads or any(not isinstance(k, int) or k < 1 for k in heads.values()):
        raise ValueError(f"heads must map each task to a positive class count, got {dict(heads)!r}")


class MultiHead(nn.Module):
    """One backbone (pooled features of width `num_features`), one linear classifier per task."""

    def __init__(self, backbone: nn.Module, num_features: int, heads: Heads) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({task: nn.Linear(num_features, classes) for task, classes in heads.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        return {task: head(features) for task, head in self.heads.items()}


def with_heads(make: Callable[[int], nn.Module], heads: Heads) -> nn.Module:
    """The shared builder step: `make(num_classes)` builds the network with a classifier of that size, `make(0)`
    without one (returning pooled features, with a `num_features` attribute) for a model with several heads."""
    check_heads(heads)
    if len(heads) == 1:
        return make(next(iter(heads.values())))
    backbone = make(0)
    return MultiHead(backbone, backbone.num_features, heads)


def weights_hint(name: str, weights: str, source: str) -> str:
    """The second half of a weights error: what the user can do about it."""
    if weights:
        return f"check that --weights {weights} holds {name}'s weights, or use --pretrained false"
    return (f"without internet, download {source} on a connected machine and pass --weights PATH, "
            f"or use --pretrained false")
