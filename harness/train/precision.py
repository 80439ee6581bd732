"""Where and how the passes run: the device, mixed precision, memory format, and the seeds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.errors import UserError


@dataclass
class Precision:
    """How the passes run on the device: autocast dtype (None: fp32) and a grad scaler for fp16."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        # bf16 keeps fp32's exponent range; only fp16 gradients need scaling to avoid underflow.
        return torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.preserve_format


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible to this process (use auto or cpu)")
    return torch.device(name)


def resolve_precision(device: torch.device, amp: str, channels_last: str) -> Precision:
    """Mixed precision only on cuda (on a CPU autocast is slower than fp32): bf16 where the GPU has it, else fp16.
    channels_last follows mixed precision by default: tensor-core convolutions want NHWC."""
    dtype = None
    if device.type == "cuda" and amp != "off":
        if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
            dtype = torch.bfloat16
        else:
            dtype = torch.float16
    nhwc = channels_last == "true" or (channels_last == "auto" and dtype is not None)
    return Precision(device, dtype, nhwc)


def seed_everything(seed: int) -> None:
    """Initial weights, shuffling and augmentations follow the seed (the split has its own seeded generator)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
