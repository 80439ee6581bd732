"""What a trained model costs to run: its inference time per image and its parameter count, measured once at the end
of the run and kept in the run folder's cost.json (the report's Pareto view, the ensemble's --inference_budget).

The time is the run's own predictor (test-time augmentation and averaged weights included) on the device the run
trained on, over the first validation batches, already loaded (decoding and augmentation are not counted): the
median of REPEATS passes after a warm-up batch. A pass takes as many batches as fill about PASS_S seconds, judged by
the warm first batch (at least one batch, at most MAX_IMAGES images): on a GPU that is MAX_IMAGES, on a CPU at
224 px a few batches, so that on a 2-core CPU the measure costs a resnet18 trial at 224 px 2.6 s instead of 7.
A run without validation images is timed on its eval images."""
from __future__ import annotations

import datetime
import logging
import math
import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from harness.fit.hooks import Hook
from harness.outputs.run_folder import RunFolder
from harness.train.predictor import Predictor

log = logging.getLogger("trial")
MAX_IMAGES = 256  # enough batches for a stable time on a fast device; bounded so that the measure costs seconds
PASS_S = 0.5  # a timed pass's length to aim at: its median of REPEATS is stable to a few per cent on a CPU
REPEATS = 3


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def batches_wanted(one_batch_s: float, batch_images: int, pass_s: float = PASS_S,
                   max_images: int = MAX_IMAGES) -> int:
    """How many batches a timed pass takes: enough for about `pass_s` seconds at `one_batch_s` per batch, at least
    one, and no more than hold `max_images` images."""
    most = max(1, math.ceil(max_images / max(batch_images, 1)))
    if one_batch_s <= 0:
        return most
    return max(1, min(most, math.ceil(pass_s / one_batch_s)))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pass_seconds(predictor: Predictor, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    device = predictor.precision.device
    _synchronize(device)
    started = time.perf_counter()
    predictor(batches)
    _synchronize(device)
    return time.perf_counter() - started


def batches_to_time(predictor: Predictor, loader: Iterable, pass_s: float = PASS_S,
                    max_images: int = MAX_IMAGES) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's first batches, held in memory, as many as `batches_wanted` says after the predictor has warmed up
    on the first (its first pass pays for kernel selection and allocation, not the model) and been timed on it."""
    iterator = iter(loader)
    first = next(iterator, None)
    if first is None:
        return []
    predictor([first])
    wanted = batches_wanted(pass_seconds(predictor, [first]), len(first[0]), pass_s, max_images)
    batches, images = [first], len(first[0])
    while len(batches) < wanted and images < max_images:
        batch = next(iterator, None)
        if batch is None:
            break
        batches.append(batch)
        images += len(batch[0])
    return batches


def time_per_image(predictor: Predictor, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Milliseconds per image of a warm `predictor` over `batches`: the median of REPEATS passes."""
    images = sum(len(batch[0]) for batch in batches)
    return statistics.median(pass_seconds(predictor, batches) for _ in range(REPEATS)) * 1000 / images


class CostHook(Hook):
    """Measures the run's final model after its last split (K-fold: the last fold's model; each fold's is the same
    architecture) and writes cost.json."""
    name = "cost"

    def __init__(self, run: RunFolder, last_split: int) -> None:
        self.run, self.last_split = run, last_split  # last_split: the scheme's last split number (--folds, or 1)

    def after_split(self) -> None:
        fit = self.loop.fit
        if fit is None or fit.split.number != self.last_split:
            return
        loader, images_of = (fit.loaders.val, "validation") if fit.loaders.val else (fit.loaders.eval, "eval")
        if loader is None:
            log.info("cost.json: no validation or eval images to time the model on")
            return
        batches = batches_to_time(fit.predictor, loader)
        if not batches:
            return
        cost = measure(fit.predictor, batches, images_of)
        with self.loop.stop.protect():
            self.run.write_cost(cost)
        log.info("inference %.3f ms per image on %s (%s, tta %s), %d parameters", cost["ms_per_image"],
                 cost["device"], images_of, cost["tta"], cost["parameters"])


def measure(predictor: Predictor, batches: list[tuple[torch.Tensor, torch.Tensor]],
            images_of: str) -> dict[str, Any]:
    """cost.json's contents."""
    device = predictor.precision.device
    ms = time_per_image(predictor, batches)
    model = predictor.average.module if predictor.average is not None else predictor.model
    return {"ms_per_image": ms, "parameters": parameter_count(model), "device": device_name(device),
            "images": sum(len(batch[0]) for batch in batches), "batch_size": len(batches[0][0]),
            "measured_on": images_of, "tta": predictor.tta, "tta_merge": predictor.tta_merge,
            "threads": torch.get_num_threads(), "at": datetime.datetime.now(datetime.UTC).isoformat()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
