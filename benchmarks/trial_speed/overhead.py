"""The harness's own overhead: its training pass against a bare PyTorch loop on the same, prepared batches."""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from benchmarks.common import spread, taking_turns
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.fixtures import fit_setup, photos, restart, snapshot, synchronize, trial_params
from harness.fit.setup import Fit
from harness.train.passes import TrainStep, train_one_epoch


class Overhead(Measure):
    name = "overhead"
    help = "train_one_epoch (uint8 batches normalised per batch, sums kept on the device) against a bare loop"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--overhead_model", default=None,
                            help="default: ecaresnet50t on a GPU, resnet10t on a CPU")
        parser.add_argument("--overhead_people", type=int, default=100)
        parser.add_argument("--overhead_img_size", type=int, default=224)
        parser.add_argument("--overhead_batch_size", type=int, default=32)
        parser.add_argument("--overhead_batches", type=int, default=6, help="training steps of one run")
        parser.add_argument("--overhead_rounds", type=int, default=4)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        model = args.overhead_model or ("ecaresnet50t" if bench.device.type == "cuda" else "resnet10t")
        # fp32 and the default optimiser implementation on both sides: the loop is what differs.
        params = trial_params(bench, photos(bench, args.overhead_people), model=model, amp="off",
                              img_size=args.overhead_img_size, batch_size=args.overhead_batch_size, num_workers=0,
                              optimizer="adam", fused_optimizer=False)
        setup, split = fit_setup(params)
        fit = setup.fit(split)
        raw = [batch for batch, _ in zip(fit.loaders.train, range(args.overhead_batches))]
        return {"model": model, "img_size": params.img_size, "batch_size": params.batch_size,
                **overhead(fit, raw, args.overhead_rounds)}

    def report(self, r: dict[str, Any]) -> list[str]:
        return [f"Harness overhead against a bare PyTorch loop ({r.get('model', '')}, same batches, median of pairs): "
                f"bare {r['bare_s']:.2f} s, harness {r['harness_s']:.2f} s, overhead {r['overhead'] * 100:+.1f}% "
                f"(pairs from {r['overhead_range'][0] * 100:+.1f}% to {r['overhead_range'][1] * 100:+.1f}%)"]


def overhead(fit: Fit, raw: list[tuple[torch.Tensor, torch.Tensor]], rounds: int) -> dict[str, Any]:
    """Seconds of the same steps from the same weights: the bare loop gets its batches already normalised and
    one head's labels, the harness the loader's uint8 batches."""
    device, criterion = fit.predictor.precision.device, torch.nn.CrossEntropyLoss()
    ready = [(fit.predictor.normalize(images), labels[:, 0].to(device)) for images, labels in raw]
    initial = snapshot(fit)

    def bare() -> float:
        restart(fit, initial)
        fit.model.train()
        synchronize(device)
        start = time.perf_counter()
        for inputs, targets in ready:
            fit.optimizer.zero_grad()
            criterion(fit.model(inputs), targets).backward()
            fit.optimizer.step()
        synchronize(device)
        return time.perf_counter() - start

    def harness() -> float:
        restart(fit, initial)
        step = TrainStep(fit.heads, {task: criterion for task in fit.heads}, fit.optimizer,
                         fit.predictor.normalize, fit.predictor.precision)
        start = time.perf_counter()
        train_one_epoch(fit.model, raw, step)  # ends with its one sync
        return time.perf_counter() - start

    bare(), harness()  # warm-up: allocator, kernels
    seconds = taking_turns({"bare": bare, "harness": harness}, rounds)
    ratios = spread([h / b for b, h in zip(seconds["bare"], seconds["harness"])])
    return {"bare_s": statistics.median(seconds["bare"]), "harness_s": statistics.median(seconds["harness"]),
            "overhead": ratios["median"] - 1, "overhead_range": [ratios["min"] - 1, ratios["max"] - 1],
            "pairs_s": list(zip(seconds["bare"], seconds["harness"]))}
