"""What the contest techniques of harness/train cost per step or per image, measured in one run, taking turns.

    python -m benchmarks.technique_costs [sam] [tta] [--rounds 3] [--out benchmarks/technique_costs.json]

sam: training images per second of the base optimiser (Adam, fused) against SAM and ASAM around it (two forward and
     backward passes per step), resnet10t and resnet18 at 64 and 224 px, batch 16, bf16 autocast + channels_last (on
     a CPU without bf16 units bf16 is emulated and slow: the ratios still hold, the rates do not); the three take
     turns, reversed every other round; medians, and the median of the per-round ratios.
tta: seconds per image of predicting with each --tta policy (mean merge; gmean costs the same), resnet18 at 224 px
     and resnet10t at 64 px, bf16 + channels_last, batch 32, the policies taking turns; medians over the rounds.

Random weights and random images: the cost of a step or a view does not depend on what it learns."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import ROOT, machine
from benchmarks.trial_speed.fixtures import synchronize
from harness.atomic import write_json
from harness.data.transforms import Normalizer
from harness.train.allocator import keep_freed_memory
from harness.train.losses import create_loss
from harness.train.optim import create_optimizer
from harness.train.passes import TrainStep, predict, train_one_epoch
from harness.train.precision import Precision
from harness.train.tta import TTA, AugmentedViews
from models import create_model

HEADS = {"multi": 18}
CASES = (("resnet10t", 64), ("resnet18", 64), ("resnet10t", 224), ("resnet18", 224))
TTA_CASES = (("resnet18", 224), ("resnet10t", 64))


def bf16(device: torch.device) -> Precision:
    return Precision(device, torch.bfloat16, channels_last=True)


def fresh_model(name: str, precision: Precision) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, HEADS, pretrained=False).to(precision.device, memory_format=precision.memory_format)


def training_rate(name: str, size: int, optimizer_name: str, precision: Precision, batch: int, steps: int) -> float:
    """Images per second over `steps` training steps, after one step of warm-up."""
    model = fresh_model(name, precision)
    optimizer = create_optimizer(optimizer_name, model.parameters(), lr=1e-4, sam_base="adam")
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)
    batches = [(images, torch.randint(0, 18, (batch, 1)))] * steps
    step = TrainStep(HEADS, {"multi": create_loss("cross_entropy", 18).to(precision.device)}, optimizer,
                     Normalizer((0.5,) * 3, (0.25,) * 3, precision.device, True), precision, precision.grad_scaler())
    train_one_epoch(model, batches[:1], step)
    result = train_one_epoch(model, batches, step)
    return result.images / result.seconds


def sam_costs(device: torch.device, rounds: int) -> list[dict]:
    precision, rows = bf16(device), []
    for name, size in CASES:
        steps = 20 if size < 128 or device.type == "cuda" else 5
        order = ["adam", "sam", "asam"]
        rates: dict[str, list[float]] = {key: [] for key in order}
        for round_ in range(rounds):
            for key in (order if round_ % 2 == 0 else order[::-1]):
                rates[key].append(training_rate(name, size, key, precision, 16, steps))
        row = {"model": name, "img_size": size, "batch_size": 16, "steps": steps, "rounds": rates}
        for key in order:
            row[key] = statistics.median(rates[key])
        for key in ("sam", "asam"):  # step time against the base's: base rate / its rate
            row[f"{key}_step_cost"] = statistics.median(a / s for a, s in zip(rates["adam"], rates[key]))
        rows.append(row)
        print(f"{name} {size} px: adam {row['adam']:.1f} img/s, sam {row['sam']:.1f} ({row['sam_step_cost']:.2f}x "
              f"the step time), asam {row['asam']:.1f} ({row['asam_step_cost']:.2f}x)", flush=True)
    return rows


def seconds_per_image(model: torch.nn.Module, policy: str, images: torch.Tensor, precision: Precision) -> float:
    loader = [(images, torch.full((len(images), 1), -1))]
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, precision.device, True)
    wrapped = AugmentedViews(model, policy)
    predict(wrapped, loader, HEADS, normalize, precision)  # warm-up: kernels for this policy's sizes
    synchronize(precision.device)
    start = time.perf_counter()
    predict(wrapped, loader * 2, HEADS, normalize, precision)
    return (time.perf_counter() - start) / (2 * len(images))


def tta_costs(device: torch.device, rounds: int) -> list[dict]:
    precision, rows = bf16(device), []
    for name, size in TTA_CASES:
        model = fresh_model(name, precision)
        images = torch.randint(0, 256, (32, size, size, 3), dtype=torch.uint8)
        policies = list(TTA)
        seconds: dict[str, list[float]] = {policy: [] for policy in policies}
        for round_ in range(rounds):
            for policy in (policies if round_ % 2 == 0 else policies[::-1]):
                seconds[policy].append(seconds_per_image(model, policy, images, precision))
        row = {"model": name, "img_size": size, "batch_size": 32, "rounds": seconds,
               "ms_per_image": {p: 1000 * statistics.median(s) for p, s in seconds.items()},
               "views": {p: len(TTA[p]) for p in policies}}
        row["cost"] = {p: statistics.median(s / n for s, n in zip(seconds[p], seconds["none"])) for p in policies}
        rows.append(row)
        print(f"{name} {size} px: " + ", ".join(f"{p} {row['ms_per_image'][p]:.2f} ms ({row['cost'][p]:.1f}x)"
                                                for p in policies), flush=True)
    return rows


def report(results: dict) -> str:
    lines = [f"Machine: {results['machine']}"]
    if "sam" in results:
        lines += ["", "| model | px | Adam, img/s | SAM, img/s | ASAM, img/s | SAM step / Adam step | ASAM step / Adam "
                      "step |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['img_size']} | {r['adam']:.1f} | {r['sam']:.1f} | {r['asam']:.1f} | "
                  f"{r['sam_step_cost']:.2f}x | {r['asam_step_cost']:.2f}x |" for r in results["sam"]]
    for row in results.get("tta", []):
        lines += ["", f"{row['model']} at {row['img_size']} px: | policy | views | ms per image | x none |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {p} | {row['views'][p]} | {row['ms_per_image'][p]:.2f} | {row['cost'][p]:.2f}x |"
                  for p in row["views"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.technique_costs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measures", nargs="*", help="sam, tta (default: both)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "technique_costs.json")
    args = parser.parse_args(argv)
    unknown = set(args.measures) - {"sam", "tta"}
    if unknown:
        parser.error(f"unknown measures {', '.join(sorted(unknown))}: expected sam, tta")
    keep_freed_memory()  # as trial.py does
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"machine": machine(), "precision": "bf16 autocast + channels_last", "rounds": args.rounds}
    for measure in dict.fromkeys(args.measures or ["sam", "tta"]):
        results[measure] = {"sam": sam_costs, "tta": tta_costs}[measure](device, args.rounds)
    write_json(results, args.out)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
