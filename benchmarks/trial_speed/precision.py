"""Training images per second in fp32, with mixed precision (bf16 on a CPU), and with channels_last: the table of
docs/speed.md, and on a GPU the mixed-precision table of the card."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from benchmarks.common import taking_turns
from benchmarks.runner import Bench, Measure
from harness.data.transforms import Normalizer
from harness.train.optim import create_optimizer
from harness.train.passes import TrainStep, train_one_epoch
from harness.train.precision import Precision
from models import create_model


class PrecisionTable(Measure):
    name = "precision"
    help = "training images/s in fp32, fp32 + channels_last, mixed precision, mixed precision + channels_last"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--precision_models",
                            default="resnet10t@64,resnet18@64,ecaresnet50t@224,efficientnet_b4@224",
                            help="model@img_size rows")
        parser.add_argument("--precision_batch_size", type=int, default=32, help="on a GPU (a CPU: 16)")
        parser.add_argument("--precision_rounds", type=int, default=2)

    def run(self, bench: Bench) -> dict[str, Any]:
        device = bench.device
        dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
        rows = []
        for item in bench.args.precision_models.split(","):
            name, size = item.split("@")
            batch = bench.args.precision_batch_size if device.type == "cuda" else 16
            steps = 20 if device.type == "cuda" or int(size) < 128 else 5
            rows += precision_table([name], device, int(size), batch, steps, dtype, bench.args.precision_rounds)
        return {"dtype": str(dtype).replace("torch.", ""), "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        amp = r.get("dtype", "amp")
        lines = [f"| model | px | fp32 | fp32 + channels_last | {amp} | {amp} + channels_last | "
                 f"speed-up: fp32 + channels_last | {amp} | {amp} + channels_last |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {row['model']} | {row['img_size']} | {row['fp32']:.1f} | "
                  f"{row.get('fp32+channels_last', float('nan')):.1f} | {row['amp']:.1f} | "
                  f"{row['amp+channels_last']:.1f} | {row.get('fp32+channels_last_speedup', float('nan')):.2f}x | "
                  f"{row['amp_speedup']:.2f}x | {row['amp+channels_last_speedup']:.2f}x |" for row in r["rows"]]
        return [*lines, "(training images per second, medians of the rounds)"]


SETTINGS = {"fp32": (None, False), "fp32+channels_last": (None, True), "amp": ("amp", False),
            "amp+channels_last": ("amp", True)}


def precision_table(models: list[str], device: torch.device, img_size: int, batch_size: int, steps: int,
                    amp_dtype: torch.dtype, rounds: int = 1) -> list[dict[str, Any]]:
    """Per model, the four settings take turns; each figure is the median over `rounds`, each speed-up the median
    of the rounds' ratios to fp32."""
    rows = []
    for name in models:
        rates = taking_turns({label: (lambda amp=amp, nhwc=nhwc, name=name: training_rate(
            name, device, img_size, batch_size, steps, amp_dtype if amp else None, nhwc))
            for label, (amp, nhwc) in SETTINGS.items()}, rounds)
        row: dict[str, Any] = {"model": name, "img_size": img_size}
        row.update({label: statistics.median(values) for label, values in rates.items()})
        row["amp_speedup"] = statistics.median(a / f for a, f in zip(rates["amp"], rates["fp32"]))
        for label in ("fp32+channels_last", "amp+channels_last"):
            row[f"{label}_speedup"] = statistics.median(a / f for a, f in zip(rates[label], rates["fp32"]))
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def training_rate(name: str, device: torch.device, img_size: int, batch_size: int, steps: int,
                  dtype: torch.dtype | None, nhwc: bool, fused: bool = True) -> float:
    """Images per second of `steps` training steps on one random uint8 batch, after one step of warm-up."""
    precision = Precision(device, dtype, nhwc)
    torch.manual_seed(0)
    model = create_model(name, {"multi": 18}, pretrained=False).to(device, memory_format=precision.memory_format)
    optimizer = create_optimizer("adam", model.parameters(), lr=1e-4, fused=fused)
    images = torch.randint(0, 256, (batch_size, img_size, img_size, 3), dtype=torch.uint8)
    batches = [(images, torch.randint(0, 18, (batch_size, 1)))] * steps
    step = TrainStep({"multi": 18}, {"multi": torch.nn.CrossEntropyLoss()}, optimizer,
                     Normalizer((0.5,) * 3, (0.25,) * 3, device, nhwc), precision, precision.grad_scaler())
    train_one_epoch(model, batches[:1], step)
    result = train_one_epoch(model, batches, step)
    return result.images / result.seconds
