"""Whole trial epochs: standalone trials as the harness ran before its speed work (fp32, NCHW, torch's default
optimiser implementation), in fp32 with fused optimisers, and with --amp auto, taking turns."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from benchmarks.common import run_checked, trial_command
from benchmarks.runner import Bench, Measure
from harness.data.demo import generate
from harness.data.layouts import load_train
from harness.data.split import split_indices

# How a trial ran before the speed work, fp32 now (fused optimisers), and what --amp auto picks (bf16 +
# channels_last where the CPU has bf16 units).
SETTINGS = {"before": ["--amp", "off", "--fused_optimizer", "false"], "fp32": ["--amp", "off"],
            "auto": ["--amp", "auto"]}


class Epochs(Measure):
    name = "epochs"
    help = "whole trial epochs at 224 px: as before the speed work, fp32 now, --amp auto"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--epochs_models", default="resnet18,ecaresnet50t")
        parser.add_argument("--epochs_rounds", type=int, default=2)
        parser.add_argument("--epochs_img_size", type=int, default=224)
        parser.add_argument("--epochs_people", type=int, default=24)

    def run(self, bench: Bench) -> dict[str, Any]:
        """A standalone trial of 2 epochs per setting; the second epoch's `seconds` from metrics.jsonl (train +
        validation: the first also warms the kernels and builds the cache)."""
        args = bench.args
        data = generate(bench.scratch / "epochs", people=args.epochs_people, eval_images=4, seed=0, jpeg_only=True)
        rows = []
        for model in args.epochs_models.split(","):
            runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
            for round_ in range(args.epochs_rounds):
                for name in (list(SETTINGS) if round_ % 2 == 0 else list(SETTINGS)[::-1]):
                    output = bench.scratch / f"epochs-{model}-{name}-{round_}"
                    command = trial_command(data, output, bench.scratch / "cache", "--model", model, "--img_size",
                                            str(args.epochs_img_size), "--batch_size", "16", "--epochs", "2",
                                            "--num_workers", "1", "--checkpoint", "none", "--tensorboard", "false",
                                            "--dump_threshold", "1", "--device", bench.device.type, *SETTINGS[name])
                    run_checked([sys.executable, *command])
                    records = next(output.glob("standalone/*/metrics.jsonl")).read_text().splitlines()
                    runs[name].append(json.loads(records[-1])["seconds"])
            rows.append({"model": model, "img_size": args.epochs_img_size, "batch_size": 16, "runs": runs,
                         "seconds": {name: statistics.median(values) for name, values in runs.items()},
                         "speedup": {name: statistics.median(b / s for b, s in zip(runs["before"], runs[name]))
                                     for name in SETTINGS}})
        train_set = load_train(data)
        val = len(split_indices(train_set.groups, train_set.group_strata, 0.2, 42)[1])
        return {"rounds": args.epochs_rounds, "train_images": len(train_set.paths) - val, "val_images": val,
                "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        names = list(SETTINGS)
        lines = ["| model | px | " + " | ".join(f"{name}, s" for name in names) + " | speed-up: " +
                 " | ".join(names[1:]) + " |", "|---|---:|" + "---:|" * (2 * len(names) - 1)]
        for row in r["rows"]:
            lines.append(f"| {row['model']} | {row['img_size']} | " +
                         " | ".join(f"{row['seconds'][name]:.1f}" for name in names) + " | " +
                         " | ".join(f"{row['speedup'][name]:.2f}x" for name in names[1:]) + " |")
        return [*lines, f"(one trial epoch, train + validation, {r['train_images']} training and {r['val_images']} "
                        f"validation images; medians of {r['rounds']} rounds)"]
