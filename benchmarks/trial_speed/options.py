"""trial.py's speed options against each other on the images of the timm comparison, taking turns: training
images/s of every epoch, process start to the first step, peak RSS and the whole run's wall time. What a speed
flag's default is chosen by (docs/speed.md)."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.common import pair_ratios, spread
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.same_images import Case, same_images, trial_args
from benchmarks.trial_speed.timm_train import quiet_turns, run_side


def variants(text: str) -> dict[str, tuple[dict[str, str], list[str]]]:
    """'default=;one worker=--num_workers 1;passive=OMP_WAIT_POLICY=passive' -> name: (environment, flags); a word
    NAME=VALUE before the flags is an environment variable of the run."""
    found = {}
    for item in text.split(";"):
        name, _, words = item.partition("=")
        env, flags = {}, words.split()
        while flags and "=" in flags[0] and not flags[0].startswith("-"):
            key, _, value = flags.pop(0).partition("=")
            env[key] = value
        found[name.strip()] = (env, flags)
    return found


class Options(Measure):
    name = "options"
    help = "trial.py's speed flags against each other on the timm comparison's images, per epoch"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--options_variants", default="default=;one worker=--num_workers 1",
                            help="name=trial.py flags, separated by ';' (the first is the reference)")
        parser.add_argument("--options_case", default="resnet18:bf16", help="model:precision (bf16 or fp32)")
        parser.add_argument("--options_epochs", type=int, default=1)
        parser.add_argument("--options_rounds", type=int, default=3)

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        images = same_images(bench, args.timm_people, args.timm_img_size)
        model, precision = args.options_case.split(":")
        case = Case(model, precision, args.timm_img_size, args.timm_batch_size, args.timm_workers,
                    args.options_epochs, bench.device.type)
        output = bench.scratch / "out"
        chosen = variants(args.options_variants)
        sides = {name: (lambda env=env, flags=flags: run_side(images, case, trial_args(images, case, output, flags),
                                                              output, env)) for name, (env, flags) in chosen.items()}
        runs = quiet_turns(sides, args.options_rounds, args.timm_min_share)
        reference = next(iter(sides))
        rows = {name: {"flags": " ".join([*(f"{k}={v}" for k, v in chosen[name][0].items()), *chosen[name][1]]),
                       "epoch_img_s": [spread(list(epoch)) for epoch in zip(*(r["epoch_img_s"] for r in runs[name]))],
                       **{key: spread([r[key] for r in runs[name]]) for key in
                          ("img_s", "first_step_s", "peak_rss_mb", "wall_s", "machine_share")},
                       "img_s_ratio": pair_ratios([r["img_s"] for r in runs[name]],
                                                  [r["img_s"] for r in runs[reference]]),
                       "wall_ratio": pair_ratios([r["wall_s"] for r in runs[name]],
                                                 [r["wall_s"] for r in runs[reference]])} for name in sides}
        return {"case": case.label, "epochs": case.epochs, "rounds": args.options_rounds, "reference": reference,
                "rows": rows, "runs": runs}

    def report(self, r: dict[str, Any]) -> list[str]:
        epochs = len(next(iter(r["rows"].values()))["epoch_img_s"])
        lines = [f"{r['case']}, {r['epochs']} epoch(s), {r['rounds']} turns each; images/s per epoch, medians "
                 f"(ranges); ratios to '{r['reference']}' the median of the rounds' ratios", "",
                 "| variant | flags | " + " | ".join(f"epoch {i + 1}, img/s" for i in range(epochs)) +
                 " | img/s ratio | first step, s | peak RSS, MB | wall, s | wall ratio |",
                 "|---|---|" + "---:|" * (epochs + 5)]
        for name, row in r["rows"].items():
            per_epoch = " | ".join(f"{e['median']:.1f} ({e['min']:.1f}-{e['max']:.1f})" for e in row["epoch_img_s"])
            lines.append(f"| {name} | `{row['flags']}` | {per_epoch} | {row['img_s_ratio']['median']:.2f}x | "
                         f"{row['first_step_s']['median']:.2f} | {row['peak_rss_mb']['median']:.0f} | "
                         f"{row['wall_s']['median']:.1f} | {row['wall_ratio']['median']:.2f}x |")
        shares = statistics.median(row["machine_share"]["min"] for row in r["rows"].values())
        return [*lines, f"(lowest share of the machine's busy CPU time that was a run's own, median over variants: "
                        f"{shares:.0%})"]
