"""timm models, with the classifier sized for the heads (see registry.py for the contract)."""
from __future__ import annotations

import os

import torch
from torch import nn

from models.registry import Heads, ModelBuilder, ModelError, register, weights_hint, with_heads


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A checkpoint as timm saves it (.safetensors or .pth), also when wrapped in {'state_dict': ...}."""
    from timm.models import load_state_dict

    return load_state_dict(path, use_ema=False)


def load_local_weights(model: nn.Module, path: str, name: str) -> None:
    """Every backbone weight must fit; only the classifier may differ (it is sized for the task). timm's own
    loader turns strictness off when it adapts the classifier, so a wrong file would pass unnoticed."""
    classifier = model.pretrained_cfg.get("classifier", "fc")
    own = model.state_dict()
    try:
        state = read_state_dict(path)
    except Exception as error:
        raise ModelError(f"weights file {path} for {name} cannot be read ({error})") from None
    state = {k: v for k, v in state.items()
             if not (k.startswith(classifier + ".") and (k not in own or v.shape != own[k].shape))}
    mismatched = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.startswith(classifier + ".")]
    unexpected = [k for k in state if k not in own]
    if mismatched or missing or unexpected:
        example = (mismatched or missing or unexpected)[0]
        raise ModelError(f"weights file {path} does not fit {name}: {len(missing)} missing, {len(unexpected)} "
                        f"unexpected and {len(mismatched)} mis-shaped tensors (e.g. {example!r}); "
                        f"{weights_hint(name, path, '')}")
    model.load_state_dict(state, strict=False)


def timm_builder(timm_name: str) -> ModelBuilder:
    def make(num_classes: int, pretrained: bool, weights: str) -> nn.Module:
        import timm

        if not pretrained or weights:
            model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes)
            if weights:
                if not os.path.isfile(weights):
                    raise ModelError(f"weights file {weights} for {timm_name} not found")
                load_local_weights(model, weights, timm_name)
            return model
        try:
            return timm.create_model(timm_name, pretrained=True, num_classes=num_classes)
        except Exception as error:  # hub unreachable, or no weights published for this name
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            cfg = timm.models.get_pretrained_cfg(timm_name)
            source = f"model.safetensors of the Hugging Face repo {getattr(cfg, 'hf_hub_id', None) or timm_name}"
            raise ModelError(f"pretrained weights for {timm_name} could not be loaded ({reason}): "
                             f"{weights_hint(timm_name, weights, source)}") from None

    def build(heads: Heads, pretrained: bool, weights: str) -> nn.Module:
        # timm's num_classes=0 leaves the pooled features and sets model.num_features: what MultiHead needs.
        return with_heads(lambda num_classes: make(num_classes, pretrained, weights), heads)

    return build


for _name in ("ecaresnet50t", "seresnet152d", "dm_nfnet_f0"):
    register(_name, timm_builder(_name))
