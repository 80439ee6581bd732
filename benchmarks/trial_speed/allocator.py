"""--keep_freed_memory: training steps per second and peak RSS with glibc told to keep freed memory, and without."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.common import clocked, taking_turns, trial_command
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.fixtures import photos

SIDES = {"kept": ["--keep_freed_memory", "true"], "glibc default": ["--keep_freed_memory", "false"]}


class Allocator(Measure):
    name = "allocator"
    help = "--keep_freed_memory true against false: training steps/s (start-up excluded) and peak RSS"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--allocator_model", default="resnet10t")
        parser.add_argument("--allocator_people", type=int, default=100)
        parser.add_argument("--allocator_img_size", type=int, default=224)
        parser.add_argument("--allocator_batch_size", type=int, default=32)
        parser.add_argument("--allocator_steps", type=int, default=12, help="training steps of one run")
        parser.add_argument("--allocator_rounds", type=int, default=3)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        command = trial_command(photos(bench, args.allocator_people), bench.scratch / "runs", bench.scratch / "cache",
                                "--model", args.allocator_model, "--img_size", str(args.allocator_img_size),
                                "--batch_size", str(args.allocator_batch_size), "--epochs", "1", "--num_workers",
                                "1", "--amp", "off", "--device", bench.device.type)
        clocked([*command, *SIDES["kept"]], stop_at=args.allocator_steps)  # warm-up: page cache, image cache
        runs = taking_turns({name: (lambda flags=flags: clocked([*command, *flags], stop_at=args.allocator_steps))
                             for name, flags in SIDES.items()}, args.allocator_rounds)
        for side in runs.values():
            for run in side:
                run.pop("log")
        rate = {name: [(len(r["steps_s"]) - 1) / (r["steps_s"][-1] - r["steps_s"][0]) for r in side]
                for name, side in runs.items()}
        return {"model": args.allocator_model, "img_size": args.allocator_img_size,
                "batch_size": args.allocator_batch_size, "steps": args.allocator_steps,
                "steps_per_s": {name: statistics.median(v) for name, v in rate.items()},
                "speedup": statistics.median(k / d for k, d in zip(rate["kept"], rate["glibc default"])),
                "peak_rss_mb": {name: statistics.median(r["peak_rss_mb"] for r in side)
                                for name, side in runs.items()}, "runs": runs}

    def report(self, r: dict[str, Any]) -> list[str]:
        kept, default = r["steps_per_s"]["kept"], r["steps_per_s"]["glibc default"]
        return [f"--keep_freed_memory ({r['model']}, {r['img_size']} px, batch {r['batch_size']}, fp32, {r['steps']} "
                f"steps, medians of {len(r['runs']['kept'])} turns): {kept:.3f} steps/s against {default:.3f} with "
                f"glibc's default, {r['speedup']:.2f}x; peak RSS {r['peak_rss_mb']['kept']:.0f} MB against "
                f"{r['peak_rss_mb']['glibc default']:.0f} MB"]
