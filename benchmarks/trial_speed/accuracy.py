"""fp32 against bf16 accuracy: the same seeded demo trial with --amp off and --amp bf16, for several seeds."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from benchmarks.common import run_checked, trial_command
from benchmarks.runner import Bench, Measure
from harness.data.demo import generate

METRICS = ["train_loss", "val_loss", "val_acc", "val_f1"]


class Accuracy(Measure):
    name = "accuracy"
    help = "the same seeded demo trial in fp32 and bf16, for several seeds: validation scores side by side"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--accuracy_epochs", type=int, default=6)
        parser.add_argument("--accuracy_seeds", default="1,2,3,4")
        parser.add_argument("--accuracy_people", type=int, default=120)

    def run(self, bench: Bench) -> dict[str, Any]:
        """resnet10t, 64 px, the 18-class task, as the demo trains. A seed fixes the initial weights, the batches,
        the augmentations and the validation people, so the two runs of a seed differ only in their arithmetic; the
        spread between seeds says how large a difference the noise alone makes."""
        args = bench.args
        data = generate(bench.scratch / "accuracy-demo", people=args.accuracy_people, eval_images=20, seed=0)
        runs: dict[str, dict[str, dict]] = {}
        for seed in args.accuracy_seeds.split(","):
            runs[seed] = {}
            for amp in ("off", "bf16"):
                output = bench.scratch / f"accuracy-{amp}-{seed}"
                start = time.perf_counter()
                command = trial_command(data, output, bench.scratch / "cache", "--model", "resnet10t", "--img_size",
                                        "64", "--batch_size", "32", "--epochs", str(args.accuracy_epochs),
                                        "--num_workers", "1", "--seed", seed, "--lr", "0.003", "--scheduler", "cosine",
                                        "--amp", amp, "--checkpoint", "none", "--tensorboard", "false", "--device",
                                        bench.device.type)
                run_checked([sys.executable, *command])
                metrics = next(output.glob("standalone/*/metrics.jsonl")).read_text().splitlines()
                runs[seed][amp] = {**json.loads(metrics[-1]), "seconds": time.perf_counter() - start}
        return summary(runs, args.accuracy_epochs)

    def report(self, r: dict[str, Any]) -> list[str]:
        lines = ["| seed | precision | " + " | ".join(r["metrics"]) + " | whole trial, s |",
                 "|---|---|" + "---:|" * (len(r["metrics"]) + 1)]
        for seed, pair in r["runs"].items():
            for amp, row in pair.items():
                lines.append(f"| {seed} | {amp} | " + " | ".join(f"{row[m]:.4f}" for m in r["metrics"]) +
                             f" | {row['seconds']:.0f} |")
        differences = {m: ", ".join(f"{d:+.4f}" for d in r["bf16_minus_fp32"][m]) for m in ("val_acc", "val_f1")}
        return [*lines, f"bf16 - fp32 per seed: val_acc {differences['val_acc']}; val_f1 {differences['val_f1']}. "
                        f"fp32 across seeds spans val_acc {r['fp32_seed_spread']['val_acc']:.4f}, val_f1 "
                        f"{r['fp32_seed_spread']['val_f1']:.4f}"]


def summary(runs: dict[str, dict[str, dict]], epochs: int) -> dict[str, Any]:
    scores = ("val_acc", "val_f1")
    return {"epochs": epochs, "seeds": [int(seed) for seed in runs], "metrics": METRICS, "runs": runs,
            "mean": {amp: {m: statistics.mean(run[amp][m] for run in runs.values()) for m in scores}
                     for amp in ("off", "bf16")},
            "bf16_minus_fp32": {m: [run["bf16"][m] - run["off"][m] for run in runs.values()] for m in scores},
            "fp32_seed_spread": {m: max(r["off"][m] for r in runs.values()) - min(r["off"][m] for r in runs.values())
                                 for m in scores}}
