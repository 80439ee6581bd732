"""The training and prediction passes over a model with one or more heads (task -> logits, see models/registry.py).

No per-batch host synchronisation on a GPU: sums stay on the device until the end of the pass, so the GPU never
waits for Python between batches. The one exception is the non-finite check, a sync every few batches (every batch
on a CPU, where a sync costs nothing)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.errors import UserError
from harness.train.mixing import dominant_labels
from harness.train.optim import needs_closure
from harness.train.precision import Precision

Heads = Mapping[str, int]  # task -> classes, in the model's order (models/registry.py describes the contract)
Criteria = Mapping[str, nn.Module]  # task -> loss of that head
GPU_CHECK_EVERY = 25  # batches between non-finite checks on a GPU


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: going on would only train on NaN."""


def head_logits(output: torch.Tensor | Mapping[str, torch.Tensor], heads: Heads) -> dict[str, torch.Tensor]:
    """A model's output as task -> logits: a one-head model returns a tensor, a several-head one a dict."""
    if isinstance(output, torch.Tensor):
        if len(heads) != 1:
            raise ValueError(f"the model returned one tensor for heads {', '.join(heads)}")
        return {next(iter(heads)): output}
    return {task: output[task] for task in heads}


@dataclass
class TrainResult:
    loss: float  # mean over images of the summed heads' losses
    accuracy: float  # share of images whose every head is right (plain accuracy for one head)
    images: int
    seconds: float


@dataclass
class Prediction:
    probs: dict[str, np.ndarray]  # task -> [N, K] softmax probabilities, in the loader's order
    loss: float | None = None  # mean over labelled images of the summed heads' criteria
    accuracy: dict[str, float] = field(default_factory=dict)  # task -> accuracy, when labelled


# What a training step may do to a batch before the forward pass (MixUp/CutMix, harness/train/mixing.py):
# (images, labels [B, heads]) -> (images, task -> [B, K] target probabilities).
BatchMix = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def _heads_loss(logits: dict[str, torch.Tensor], targets: torch.Tensor | Mapping[str, torch.Tensor],
                criteria: Criteria) -> torch.Tensor:
    """targets: labels [B, heads], or task -> [B, K] probabilities (mixed batches)."""
    def target(h: int, task: str) -> torch.Tensor:
        return targets[task] if isinstance(targets, Mapping) else targets[:, h]
    # Losses in fp32 whatever autocast computed the logits in.
    return sum(criteria[task](logits[task].float(), target(h, task)) for h, task in enumerate(criteria))


@dataclass
class TrainStep:
    """What every optimiser step of a training pass needs besides its batch: the heads and their criteria, the
    optimiser, the batch's normalisation, the precision (and fp16's grad scaler), MixUp/CutMix of the batch, and
    a call after each step (the weight average's update)."""
    heads: Heads
    criteria: Criteria
    optimizer: torch.optim.Optimizer
    normalize: Callable[[torch.Tensor], torch.Tensor]
    precision: Precision
    scaler: torch.amp.GradScaler | None = None
    mix: BatchMix | None = None
    after_step: Callable[[nn.Module], None] | None = None


def _batch_loss(model: nn.Module, inputs: torch.Tensor, goal: torch.Tensor | Mapping[str, torch.Tensor],
                step: TrainStep) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The batch's logits per head and its loss, under the step's autocast."""
    with step.precision.autocast():
        logits = head_logits(model(inputs), step.heads)
        return logits, _heads_loss(logits, goal, step.criteria)


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, loss: torch.Tensor,
                    again: Callable[[], torch.Tensor]) -> None:
    """The batch's backward and one optimiser step (fp16: through the grad scaler). An optimiser that needs the
    batch's loss at other weights (SAM, harness/train/sam.py) gets a closure that runs `again` (the same batch's
    forward) and its backward, and the scaler to unscale with."""
    def backward(value: torch.Tensor) -> torch.Tensor:
        (scaler.scale(value) if scaler is not None else value).backward()
        return value

    backward(loss)
    if needs_closure(optimizer):
        optimizer.step(lambda: backward(again()), grad_scaler=scaler)
    elif scaler is not None:
        scaler.step(optimizer)
    else:
        optimizer.step()
    if scaler is not None:
        scaler.update()


def _frozen_stats_loss(model: nn.Module, forward: Callable[[], tuple[Any, torch.Tensor]]) -> torch.Tensor:
    """The loss of a second evaluation of the batch, with batch norm's running statistics (and its batch count)
    left as they are: they move once per step, in the first pass. Momentum 0 keeps the statistics; with no batch
    count the layer does not add to it (torch's and timm's batch norms both skip it when it is None)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.training
             and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked) for m in norms]
    for m in norms:
        m.momentum, m.num_batches_tracked = 0.0, None
    try:
        return forward()[1]
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum, m.num_batches_tracked = momentum, count


def train_one_epoch(model: nn.Module, loader: DataLoader, step: TrainStep,
                    on_batch: Callable[[int, int], None] | None = None) -> TrainResult:
    """One pass over `loader`, whose labels are [B, heads]. on_batch(batches done, images done) is called after
    each step (progress reporting); it must not synchronise. With step.mix, train accuracy counts a prediction
    right when it is the mixed target's dominant class (its arg-max: the image with the larger share), and train
    loss is the loss on the mixed targets."""
    heads, optimizer, normalize, scaler = step.heads, step.optimizer, step.normalize, step.scaler
    mix, after_step, device = step.mix, step.after_step, step.precision.device
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    check_every = GPU_CHECK_EVERY if device.type == "cuda" else 1
    start = time.perf_counter()
    for batch, (images, labels) in enumerate(loader, start=1):
        inputs = normalize(images)
        targets = labels.to(device, non_blocking=True)
        mixed = None
        if mix is not None:
            inputs, mixed = mix(inputs, targets)
            targets = dominant_labels(mixed)
        forward = partial(_batch_loss, model, inputs, targets if mixed is None else mixed, step)
        logits, loss = forward()
        optimizer.zero_grad(set_to_none=True)
        _optimizer_step(optimizer, scaler, loss, again=partial(_frozen_stats_loss, model, forward))
        if after_step is not None:
            after_step(model)
        loss_sum += loss.detach().float() * len(labels)
        right = torch.stack([logits[task].detach().argmax(1) == targets[:, h] for h, task in enumerate(heads)])
        correct += right.all(0).sum()
        seen += len(labels)
        if batch % check_every == 0 and not torch.isfinite(loss_sum).item():
            raise TrainingDiverged(f"the training loss became {loss_sum.item()} by batch {batch}")
        if on_batch is not None:
            on_batch(batch, seen)
    # The only synchronisation of the pass on a GPU.
    loss_value, correct_value = loss_sum.item(), correct.item()
    if not np.isfinite(loss_value):
        raise TrainingDiverged(f"the training loss became {loss_value} by the end of the pass")
    return TrainResult(loss=loss_value / max(seen, 1), accuracy=correct_value / max(seen, 1), images=seen,
                       seconds=time.perf_counter() - start)


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, heads: Heads, normalize: Callable[[torch.Tensor], torch.Tensor],
            precision: Precision, criteria: Criteria | None = None) -> Prediction:
    """Softmax probabilities of every head for every image of the loader; loss and accuracy too when `criteria`
    are given and the loader has labels."""
    model.eval()
    probs: dict[str, list[torch.Tensor]] = {task: [] for task in heads}
    loss_sum = torch.zeros((), device=precision.device)
    correct = torch.zeros(len(heads), device=precision.device, dtype=torch.long)
    labelled = 0
    for images, labels in loader:
        with precision.autocast():
            logits = {task: value.float() for task, value in head_logits(model(normalize(images)), heads).items()}
        for task in heads:
            probs[task].append(torch.softmax(logits[task], dim=1))
        if criteria is not None and bool((labels >= 0).all()):
            targets = labels.to(precision.device, non_blocking=True)
            loss_sum += _heads_loss(logits, targets, criteria) * len(labels)
            correct += torch.stack([(logits[task].argmax(1) == targets[:, h]).sum() for h, task in enumerate(heads)])
            labelled += len(labels)
    stacked = {task: torch.cat(chunks).cpu().numpy().astype(np.float64) for task, chunks in probs.items()}
    if not labelled:
        return Prediction(stacked)
    accuracy = dict(zip(heads, (correct.cpu().numpy() / labelled).tolist()))
    return Prediction(stacked, loss=loss_sum.item() / labelled, accuracy=accuracy)
