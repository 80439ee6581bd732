"""The decoded-image cache: the loader alone, and one trial epoch, decoding JPEGs against reading the cache."""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from typing import Any

from benchmarks.common import pair_ratios, taking_turns
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.fixtures import fit_setup, fits, photos, restart, snapshot, trial_params
from harness.fit.setup import Fit
from harness.train.passes import train_one_epoch

SIDES = {"jpeg": {"cache": False}, "cache": {"cache": True}}


class Cache(Measure):
    name = "cache"
    help = "the loader's images/s and one trial epoch, decoding every JPEG against the decoded-image cache"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cache_people", type=int, default=100, help="people of the generated photos (7 each)")
        parser.add_argument("--cache_model", default=None,
                            help="model of the epoch runs (default: ecaresnet50t on a GPU, resnet10t on a CPU)")
        parser.add_argument("--cache_img_size", type=int, default=224)
        parser.add_argument("--cache_batch_size", type=int, default=32)
        parser.add_argument("--cache_workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                            help="loader workers (default: one core left to the training process)")
        parser.add_argument("--cache_loader_rounds", type=int, default=6)
        parser.add_argument("--cache_loader_epochs", type=int, default=3, help="passes over the images per round")
        parser.add_argument("--cache_epoch_rounds", type=int, default=4)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        model = args.cache_model or ("ecaresnet50t" if bench.device.type == "cuda" else "resnet10t")
        params = trial_params(bench, photos(bench, args.cache_people), model=model, img_size=args.cache_img_size,
                              batch_size=args.cache_batch_size, num_workers=args.cache_workers)
        setup, split = fit_setup(params)
        start = time.perf_counter()
        setup.loaders(split.train_idx, split.val_idx)  # builds the cache
        figures: dict[str, Any] = {"images": len(setup.data.train_set.paths), "model": model,
                                   "img_size": params.img_size, "batch_size": params.batch_size,
                                   "num_workers": params.num_workers, "cache_build_s": time.perf_counter() - start}
        loaders = {name: setup.loaders(split.train_idx, split.val_idx, **changes).train
                   for name, changes in SIDES.items()}
        figures.update(loader_rates(loaders, args.cache_loader_rounds, args.cache_loader_epochs))
        figures.update(epoch_seconds(fits(params, **SIDES), args.cache_epoch_rounds))
        return figures

    def report(self, r: dict[str, Any]) -> list[str]:
        return [
            f"{r['images']} photos of 384x512 (JPEG), trained at {r['img_size']} px, batch {r['batch_size']}, "
            f"{r['num_workers']} loader workers; cache built once in {r['cache_build_s']:.1f} s", "",
            "| measure | without cache | with cache | ratio |", "|---|---:|---:|---:|",
            f"| loader, images/s (decode+crop+resize+augment vs augment) | {r['loader_jpeg_img_s']:.0f} | "
            f"{r['loader_cache_img_s']:.0f} | {r['loader_ratio']:.1f}x |",
            f"| one trial epoch of {r['model']} (train + validation), s | {r['epoch_jpeg_s']:.1f} | "
            f"{r['epoch_cache_s']:.1f} | {r['epoch_ratio']:.2f}x |", "",
            "(medians of passes taking turns; the ratio is the median of the per-round ratios)"]


def loader_rates(loaders: dict[str, Any], rounds: int, epochs: int) -> dict[str, Any]:
    """Images per second of the training loader alone (no model): both live side by side and take turns, `epochs`
    passes each per round (a contest epoch is 20 times longer than one pass here, so a single pass would overweigh
    the start of an epoch)."""
    for loader in loaders.values():  # start the (persistent) workers, warm the page cache
        for _ in loader:
            pass

    def rate(loader: Any) -> float:
        start, images = time.perf_counter(), 0
        for _ in range(epochs):
            for batch, _labels in loader:
                images += len(batch)
        return images / (time.perf_counter() - start)

    rates = taking_turns({name: (lambda loader=loader: rate(loader)) for name, loader in loaders.items()}, rounds)
    return {"loader_jpeg_img_s": statistics.median(rates["jpeg"]),
            "loader_cache_img_s": statistics.median(rates["cache"]),
            "loader_ratio": pair_ratios(rates["cache"], rates["jpeg"])["median"], "loader_rounds_img_s": rates}


def epoch_seconds(sides: dict[str, Fit], rounds: int) -> dict[str, Any]:
    """One trial epoch as trial.py runs it (train, then validate) without and with the cache, taking turns, each
    from the same initial weights."""
    initial = snapshot(next(iter(sides.values())))
    for fit in sides.values():  # warm-up: workers started, allocator and kernels settled
        train_one_epoch(fit.model, itertools.islice(fit.loaders.train, 3), fit.train_step())

    def epoch(fit: Fit) -> float:
        restart(fit, initial)
        start = time.perf_counter()
        fit.train_epoch(1, 1, None)
        fit.validate()
        return time.perf_counter() - start

    seconds = taking_turns({name: (lambda fit=fit: epoch(fit)) for name, fit in sides.items()}, rounds)
    return {"epoch_jpeg_s": statistics.median(seconds["jpeg"]), "epoch_cache_s": statistics.median(seconds["cache"]),
            "epoch_ratio": pair_ratios(seconds["jpeg"], seconds["cache"])["median"], "epoch_rounds_s": seconds}
