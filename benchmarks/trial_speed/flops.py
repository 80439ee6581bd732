"""How close to the machine's limit an epoch runs: each model's forward + backward FLOPs per image (torch's
FlopCounterMode) times the training images/s of the timm comparison (trial.py's and timm's), against this machine's
measured matmul peak (a large torch.matmul of bf16 and of fp32 operands)."""
from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.runner import Bench, Measure
from models import create_model


class Flops(Measure):
    name = "flops"
    help = "model FLOP/s of a training epoch (FLOPs per image x images/s of 'timm') against the matmul peak"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--flops_models", default="resnet18,efficientnet_b0")
        parser.add_argument("--flops_matmul_size", type=int, default=4096, help="side of the square matmuls")
        parser.add_argument("--flops_matmul_repeats", type=int, default=10)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        size = args.timm_img_size
        peak = {name: matmul_peak(bench.device, dtype, args.flops_matmul_size, args.flops_matmul_repeats)
                for name, dtype in (("bf16", torch.bfloat16), ("fp32", None))}
        per_image = {model: training_flops(model, size) for model in args.flops_models.split(",")}
        rows = []
        for row in bench.figures.get("timm", {}).get("rows", []):
            if row["model"] in per_image:
                flops = per_image[row["model"]]
                rows.append({"case": row["case"], "precision": row["precision"], "flops_per_image": flops, **{
                    side: {"img_s": row[side]["img_s"]["median"],
                           "gflop_s": flops * row[side]["img_s"]["median"] / 1e9,
                           "share_of_peak": flops * row[side]["img_s"]["median"] / peak[row["precision"]]}
                    for side in ("trial", "timm")}})
        return {"img_size": size, "peak_flop_s": peak, "flops_per_image": per_image, "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        lines = [f"matmul peak: bf16 {r['peak_flop_s']['bf16'] / 1e9:.0f} GFLOP/s, fp32 "
                 f"{r['peak_flop_s']['fp32'] / 1e9:.0f} GFLOP/s; forward + backward per image at {r['img_size']} px: " +
                 ", ".join(f"{m} {f / 1e9:.2f} GFLOP" for m, f in r["flops_per_image"].items()), "",
                 "| case | trial.py GFLOP/s | share of peak | timm GFLOP/s | share of peak |",
                 "|---|---:|---:|---:|---:|"]
        lines += [f"| {row['case']} | {row['trial']['gflop_s']:.0f} | {row['trial']['share_of_peak']:.0%} | "
                  f"{row['timm']['gflop_s']:.0f} | {row['timm']['share_of_peak']:.0%} |" for row in r["rows"]]
        return lines


def training_flops(model_name: str, img_size: int, batch: int = 2) -> float:
    """Forward + backward FLOPs of one training image: FlopCounterMode's forward count (convolutions and matmuls) and
    twice that for the backward pass (the input's and the weights' gradients, each the forward's size). The backward
    is not counted directly because torch's counter ignores a convolution's groups there: for efficientnet_b0's
    depthwise convolutions it counts 31.4 GFLOP of backward against 0.77 of forward (resnet18, ungrouped: 7.0
    against 3.6)."""
    model = create_model(model_name, {"multi": 18}, pretrained=False).train()
    images = torch.randn(batch, 3, img_size, img_size)
    with FlopCounterMode(display=False) as counter:
        model(images)
    return 3 * counter.get_total_flops() / batch


def matmul_peak(device: torch.device, dtype: torch.dtype | None, size: int, repeats: int) -> float:
    """The best FLOP/s of a size x size matmul over `repeats` (2 size^3 FLOPs each), its operands already in `dtype`
    (None: fp32), so that no conversion is timed."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype or torch.float32) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):  # the first builds the kernel
        start = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best
