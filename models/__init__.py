"""Models by search-space name: `create_model(name, heads, pretrained, weights)`; the contract is in registry.py."""
from __future__ import annotations

from torch import nn

from models import efficientnet, timm_backbones  # noqa: F401  (each registers its entries)
from models.efficientnet import set_fast_swish
from models.registry import MODELS, Heads, ModelError, register


def is_known(name: str) -> bool:
    if name in MODELS:
        return True
    import timm  # optional lookups pay timm's import only when a name is not ours

    return bool(timm.is_model(name))


def require_known(name: str) -> None:
    if not is_known(name):
        raise ModelError(f"unknown model {name!r}: expected one of {', '.join(MODELS)} or a timm model name")


def create_model(name: str, heads: Heads, pretrained: bool = False, weights: str = "",
                 fast_swish: bool = True) -> nn.Module:
    """The registered builder, or timm's model of that name; fast_swish: see set_fast_swish."""
    if name in MODELS:
        model = MODELS[name](heads, pretrained, weights)
    else:
        require_known(name)
        model = timm_backbones.timm_builder(name)(heads, pretrained, weights)
    set_fast_swish(model, fast_swish)
    return model


__all__ = ["MODELS", "Heads", "ModelError", "create_model", "is_known", "register",
           "require_known", "set_fast_swish"]
