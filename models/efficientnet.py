"""EfficientNets from efficientnet-pytorch (lukemelas), as the origin used them."""
from __future__ import annotations

import os

from torch import nn

from harness.errors import UserError
from models.registry import ModelBuilder, register, weights_hint


def efficientnet_builder(variant: str, registered_name: str) -> ModelBuilder:
    """variant: efficientnet-pytorch's name, e.g. 'efficientnet-b4'."""

    def build(num_classes: int, pretrained: bool, weights: str) -> nn.Module:
        from efficientnet_pytorch import EfficientNet
        from efficientnet_pytorch.utils import url_map

        if not pretrained:
            return EfficientNet.from_name(variant, num_classes=num_classes)
        if weights and not os.path.isfile(weights):
            raise UserError(f"weights file {weights} for {registered_name} not found")
        try:
            # Without weights_path it downloads into torch hub's cache (~/.cache/torch/hub/checkpoints), where a
            # copied file is found too. The classifier is replaced when num_classes != 1000.
            return EfficientNet.from_pretrained(variant, weights_path=weights or None, num_classes=num_classes)
        except Exception as error:  # URLError offline, size mismatch or assertion for a wrong file
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"pretrained weights for {registered_name} could not be loaded ({reason}): "
                            f"{weights_hint(registered_name, weights, url_map[variant])}") from None

    return build


def set_fast_swish(model: nn.Module, fast: bool) -> None:
    """efficientnet-pytorch trains with a memory-efficient swish (a custom autograd function that recomputes);
    the plain swish is faster when memory allows. Other models are left alone."""
    if hasattr(model, "set_swish"):
        model.set_swish(memory_efficient=not fast)


for _variant in ("b4", "b6"):
    register(f"Efficientnet_{_variant}", efficientnet_builder(f"efficientnet-{_variant}", f"Efficientnet_{_variant}"))
