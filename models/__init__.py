"""Models by search-space name: `create_model(name, num_classes, pretrained, weights)`."""
from models import efficientnet, timm_backbones  # noqa: F401  (each registers its entries)
from models.efficientnet import set_fast_swish
from models.registry import MODELS, create_model, is_known, register, require_known

__all__ = ["MODELS", "create_model", "is_known", "register", "require_known", "set_fast_swish"]
