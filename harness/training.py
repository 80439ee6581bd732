"""The training and prediction passes. No per-batch host synchronisation: sums stay on the device until the end
of the pass, so the GPU is never made to wait for Python between batches."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from harness.errors import UserError

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


@dataclass
class TrainResult:
    loss: float
    accuracy: float
    images: int
    seconds: float


@dataclass
class Prediction:
    probs: np.ndarray  # [N, K] softmax probabilities, in the loader's order
    loss: float | None = None  # mean criterion over labelled images
    accuracy: float | None = None


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    normalize: Callable[[torch.Tensor], torch.Tensor], precision: Precision,
                    scaler: torch.amp.GradScaler | None = None) -> TrainResult:
    device = precision.device
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    start = time.perf_counter()
    for images, labels in loader:
        inputs = normalize(images)
        targets = labels.to(device, non_blocking=True)
        with precision.autocast():
            logits = model(inputs)
            loss = criterion(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        loss_sum += loss.detach().float() * len(labels)
        correct += (logits.detach().argmax(1) == targets).sum()
        seen += len(labels)
    # The only synchronisation of the pass.
    loss_value, correct_value = loss_sum.item(), correct.item()
    return TrainResult(loss=loss_value / max(seen, 1), accuracy=correct_value / max(seen, 1), images=seen,
                       seconds=time.perf_counter() - start)


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, normalize: Callable[[torch.Tensor], torch.Tensor],
            precision: Precision, criterion: nn.Module | None = None) -> Prediction:
    """Softmax probabilities for every image of the loader; loss and accuracy too when it has labels."""
    model.eval()
    probs: list[torch.Tensor] = []
    loss_sum = torch.zeros((), device=precision.device)
    correct = torch.zeros((), device=precision.device, dtype=torch.long)
    labelled = 0
    for images, labels in loader:
        with precision.autocast():
            logits = model(normalize(images)).float()
        probs.append(torch.softmax(logits, dim=1))
        if criterion is not None and bool((labels >= 0).all()):
            targets = labels.to(precision.device, non_blocking=True)
            loss_sum += criterion(logits, targets).float() * len(labels)
            correct += (logits.argmax(1) == targets).sum()
            labelled += len(labels)
    stacked = torch.cat(probs).cpu().numpy().astype(np.float64)
    if not labelled:
        return Prediction(stacked)
    return Prediction(stacked, loss=loss_sum.item() / labelled, accuracy=correct.item() / labelled)


def seed_everything(seed: int) -> None:
    """Initial weights, shuffling and augmentations follow the seed (the split has its own seeded generator)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
