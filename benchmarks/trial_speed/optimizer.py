"""torch's fused optimiser kernels (--fused_optimizer) against the default implementation, on training steps."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.common import taking_turns
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.precision import training_rate
from harness.train.precision import resolve_precision


class Optimizer(Measure):
    name = "optimizer"
    help = "training steps with torch's fused Adam against its default implementation"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--optimizer_models", default="resnet10t,resnet18")
        parser.add_argument("--optimizer_img_size", type=int, default=64)
        parser.add_argument("--optimizer_batch_size", type=int, default=16)
        parser.add_argument("--optimizer_steps", type=int, default=30)
        parser.add_argument("--optimizer_rounds", type=int, default=6)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        auto = resolve_precision(bench.device, "auto", "auto")
        rows = []
        for name in args.optimizer_models.split(","):
            rates = taking_turns({fused: (lambda fused=fused, name=name: training_rate(
                name, bench.device, args.optimizer_img_size, args.optimizer_batch_size, args.optimizer_steps,
                auto.amp_dtype, auto.channels_last, fused=fused == "fused")) for fused in ("fused", "default")},
                args.optimizer_rounds)
            rows.append({"model": name, "img_size": args.optimizer_img_size, "batch_size": args.optimizer_batch_size,
                         "fused": statistics.median(rates["fused"]), "default": statistics.median(rates["default"]),
                         "speedup": statistics.median(f / d for f, d in zip(rates["fused"], rates["default"])),
                         "rounds": rates})
        return {"precision": auto.reason, "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        lines = ["| model | px | batch | fused Adam img/s | default Adam img/s | speed-up |",
                 "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {row['model']} | {row['img_size']} | {row['batch_size']} | {row['fused']:.0f} | "
                  f"{row['default']:.0f} | {row['speedup']:.2f}x |" for row in r["rows"]]
        return [*lines, f"(training steps, {r['precision']}; medians of rounds taking turns)"]
