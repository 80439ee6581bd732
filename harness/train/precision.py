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
    reason: str = ""  # why this precision was chosen, for the trial log

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


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True on CPUs with bf16 arithmetic units (AVX-512 BF16 or AMX), read from the CPU's flags in /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def resolve_precision(device: torch.device, amp: str, channels_last: str, cpu_bf16: bool | None = None
                      ) -> Precision:
    """The autocast dtype and memory format of the passes, and the reason, for the trial log.

    On cuda: bf16 where the GPU has it, else fp16 with a grad scaler. On a CPU, `auto` picks bf16 where the CPU has
    native bf16 units (AVX-512 BF16 cores, resnet18 training steps at batch 32: bf16 + channels_last 2.1x fp32 at
    128 px, 2.3x at 224 px), fp32 elsewhere (emulated bf16 measured 0.06-0.3x fp32 on AVX2 cores, README "Speed");
    `bf16` forces it; fp16 autocast is not used on a CPU. channels_last follows mixed precision by default:
    tensor-core and oneDNN bf16 convolutions both want NHWC."""
    dtype, reason = None, "fp32 (--amp off)" if amp == "off" else ""
    if device.type == "cuda" and amp != "off":
        if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
            dtype, reason = torch.bfloat16, "bf16 autocast on cuda"
        else:
            dtype, reason = torch.float16, "fp16 autocast on cuda, with a grad scaler"
    elif device.type == "cpu" and amp == "bf16":
        dtype, reason = torch.bfloat16, "bf16 autocast (--amp bf16)"
    elif device.type == "cpu" and amp == "auto":
        native = cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16
        if not native:
            reason = "fp32: this CPU has no native bf16, where autocast is slower than fp32"
        else:
            dtype, reason = torch.bfloat16, "bf16 autocast: the CPU has native bf16"
    elif device.type == "cpu" and amp == "fp16":
        reason = "fp32: fp16 autocast is for cuda only"
    nhwc = channels_last == "true" or (channels_last == "auto" and dtype is not None)
    return Precision(device, dtype, nhwc, reason or "fp32")


def set_cpu_threads(threads: int) -> int:
    """torch's intra-op threads for CPU arithmetic (0 leaves torch's default, one per core); returns the count.

    Two trials side by side on a 2-core CPU, one thread each, finished the demo in 0.64x and 0.81x the time of one
    trial at a time on both cores (two rounds; README "Speed"): at 64 px a convolution is too small to split across
    cores efficiently, and one trial trains while the other starts up. Set before the loader workers fork (they
    keep one thread each, as torch makes them)."""
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    """Initial weights, shuffling and augmentations follow the seed (the split has its own seeded generator)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
