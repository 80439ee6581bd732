"""EfficientNets from efficientnet-pytorch (lukemelas), as the original contest code used them."""
from __future__ import annotations

import os

from torch import nn

from models.registry import Heads, ModelBuilder, ModelError, register, weights_hint, with_heads


def efficientnet_builder(variant: str, registered_name: str) -> ModelBuilder:
    """variant: efficientnet-pytorch's name, e.g. 'efficientnet-b4'."""

    def make(num_classes: int, pretrained: bool, weights: str) -> nn.Module:
        from efficientnet_pytorch import EfficientNet
        from efficientnet_pytorch.utils import url_map

        classes = num_classes or 1000  # 0: features only; the classifier built here is dropped below
        if not pretrained:
            model = EfficientNet.from_name(variant, num_classes=classes)
        else:
            if weights and not os.path.isfile(weights):
                raise ModelError(f"weights file {weights} for {registered_name} not found")
            try:
                # Without weights_path it downloads into torch hub's cache (~/.cache/torch/hub/checkpoints), where
                # a copied file is found too. The classifier is replaced when num_classes != 1000.
                model = EfficientNet.from_pretrained(variant, weights_path=weights or None, num_classes=classes)
            except Exception as error:  # URLError offline, size mismatch or assertion for a wrong file
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ModelError(f"pretrained weights for {registered_name} could not be loaded ({reason}): "
                                 f"{weights_hint(registered_name, weights, url_map[variant])}") from None
        if num_classes == 0:
            model.num_features = model._fc.in_features
            model._fc = nn.Identity()  # forward then returns the pooled (and dropped-out) features
        return model

    def build(heads: Heads, pretrained: bool, weights: str) -> nn.Module:
        return with_heads(lambda num_classes: make(num_classes, pretrained, weights), heads)

    return build


def set_fast_swish(model: nn.Module, fast: bool) -> None:
    """efficientnet-pytorch trains with a memory-efficient swish (a custom autograd function that recomputes);
    the plain swish is faster when memory allows. Other models are left alone."""
    for module in model.modules():  # the network itself, or the backbone of a MultiHead
        if hasattr(module, "set_swish"):
            module.set_swish(memory_efficient=not fast)
            return


for _variant in ("b4", "b6"):
    register(f"Efficientnet_{_variant}", efficientnet_builder(f"efficientnet-{_variant}", f"Efficientnet_{_variant}"))
