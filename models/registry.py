"""The model registry: search-space names -> constructors sharing one signature.

Any other timm model name works too (timm's own registry), so a user can search over architectures we never listed;
nothing outside these two registries can be chosen from a config."""
from __future__ import annotations

from typing import Callable

from torch import nn

from harness.errors import UserError

# (num_classes, pretrained, weights file or "") -> model whose classifier is sized for the task
ModelBuilder = Callable[[int, bool, str], nn.Module]

MODELS: dict[str, ModelBuilder] = {}


def register(name: str, builder: ModelBuilder) -> ModelBuilder:
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    MODELS[name] = builder
    return builder


def is_known(name: str) -> bool:
    if name in MODELS:
        return True
    import timm  # optional lookups pay timm's import only when a name is not ours

    return bool(timm.is_model(name))


def require_known(name: str) -> None:
    if not is_known(name):
        raise UserError(f"unknown model {name!r}: expected one of {', '.join(MODELS)} or a timm model name")


def create_model(name: str, num_classes: int, pretrained: bool = False, weights: str = "") -> nn.Module:
    if name in MODELS:
        return MODELS[name](num_classes, pretrained, weights)
    require_known(name)
    from models.timm_backbones import timm_builder

    return timm_builder(name)(num_classes, pretrained, weights)


def weights_hint(name: str, weights: str, source: str) -> str:
    """The second half of a weights error: what the user can do about it."""
    if weights:
        return f"check that --weights {weights} holds {name}'s weights, or use --pretrained false"
    return (f"without internet, download {source} on a connected machine and pass --weights PATH, "
            f"or use --pretrained false")
