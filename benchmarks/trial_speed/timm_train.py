"""trial.py against timm's own train.py on the same images, taking turns: per-epoch training images/s, process start
to the first optimiser step, and the main process's peak RSS (issue 26's table).

Both run whole (one process each, start to exit) under benchmarks/step_clock.py, which times every optimiser step
from outside, so both sides are measured by the same clock whatever they log. timm's train.py comes from a checkout
of pytorch-image-models that --timm_dir points at (never from this repository: docs/speed.md says how to get it)."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import bare_env, clocked, epoch_rates, pair_ratios, spread
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.same_images import Case, SameImages, same_images, timm_args, timm_script, trial_args

FIGURES = {"img_s": "train images/s", "first_step_s": "process start to the first step, s",
           "peak_rss_mb": "peak RSS of the main process, MB"}


def cases(args: argparse.Namespace, device: str) -> list[Case]:
    """'resnet18:bf16,efficientnet_b0:bf16,resnet18:fp32' -> one Case each."""
    found = []
    for item in args.timm_cases.split(","):
        model, precision = item.split(":")
        found.append(Case(model, precision, args.timm_img_size, args.timm_batch_size, args.timm_workers,
                          args.timm_epochs, device))
    return found


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timm_dir", type=Path, help="a pytorch-image-models checkout (its train.py)")
    parser.add_argument("--timm_cases", default="resnet18:bf16,efficientnet_b0:bf16,resnet18:fp32",
                        help="model:precision pairs, precision bf16 (with channels_last) or fp32")
    parser.add_argument("--timm_people", type=int, default=150, help="people of the generated photos (7 each)")
    parser.add_argument("--timm_img_size", type=int, default=224)
    parser.add_argument("--timm_batch_size", type=int, default=32)
    parser.add_argument("--timm_workers", type=int, default=2, help="loader workers, on both sides")
    parser.add_argument("--timm_epochs", type=int, default=1)


class TimmTrain(Measure):
    name = "timm"
    help = "trial.py against timm's train.py (--timm_dir) on the same images: images/s, first step, peak RSS"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_case_arguments(parser)
        parser.add_argument("--timm_pairs", default="5,5,3", help="pairs of runs per case (one number: for all)")
        parser.add_argument("--timm_trial_flags", default="", help="more trial.py flags (a speed option to try)")
        parser.add_argument("--timm_min_share", type=float, default=0.95,
                            help="a pair is run again (up to twice) when a run had less of the machine's busy CPU "
                                 "time than this: other work took the rest (a quiet run has 98-99.7%%; a process "
                                 "taking 10%% of the machine slows trial.py by 9%%: the contention measure)")

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        script = timm_script(args.timm_dir)
        images = same_images(bench, args.timm_people, args.timm_img_size)
        all_cases = cases(args, bench.device.type)
        pairs = [int(n) for n in args.timm_pairs.split(",")]
        pairs = pairs * len(all_cases) if len(pairs) == 1 else pairs
        rows = []
        for case, count in zip(all_cases, pairs):
            sides = {"trial": lambda case=case: run_side(images, case, trial_args(
                         images, case, bench.scratch / "out", args.timm_trial_flags.split()), bench.scratch / "out"),
                     "timm": lambda case=case: run_side(images, case, timm_args(
                         script, images, case, bench.scratch / "out"), bench.scratch / "out")}
            rows.append({"case": case.label, "model": case.model, "precision": case.precision, "pairs": count,
                         **compare(quiet_turns(sides, count, args.timm_min_share))})
        return {"timm_train_py": str(script), "train_images": images.train_images, "img_size": args.timm_img_size,
                "batch_size": args.timm_batch_size, "workers": args.timm_workers, "epochs": args.timm_epochs,
                "trial_flags": args.timm_trial_flags, "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        lines = [f"{r['train_images']} training images at {r['img_size']} px, batch {r['batch_size']}, "
                 f"{r['workers']} loader workers each, {r['epochs']} epoch(s) from scratch; medians (ranges) of runs "
                 f"taking turns, ratios the median (range) of the pairs' ratios", "",
                 "| measure | trial.py | timm train.py | trial / timm |", "|---|---:|---:|---:|"]
        for row in r["rows"]:
            for key, what in FIGURES.items():
                trial, timm, ratio = row["trial"][key], row["timm"][key], row["ratio"][key]
                lines.append(f"| {row['case']}: {what} ({row['pairs']} pairs) | {fmt(trial)} | {fmt(timm)} | "
                             f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}) |")
        shares = ", ".join(f"{row['case']} {row['trial']['machine_share']['min']:.0%}/"
                           f"{row['timm']['machine_share']['min']:.0%}" for row in r["rows"])
        return [*lines, f"(lowest share of the machine's busy CPU time that was the run's own, trial/timm: {shares})"]


def fmt(figure: dict[str, float]) -> str:
    digits = 0 if figure["median"] >= 100 else 1 if figure["median"] >= 10 else 2
    return f"{figure['median']:.{digits}f} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"


def run_side(images: SameImages, case: Case, command: list[str], output: Path,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """One whole run (`env`: variables added to its environment); its outputs (checkpoints of 50-90 MB) are
    removed after it."""
    shutil.rmtree(output, ignore_errors=True)
    run = clocked(command, bare_env(**(env or {})))
    shutil.rmtree(output, ignore_errors=True)
    run.pop("log")
    run["epoch_img_s"] = epoch_rates(run["steps_s"], images.train_images // case.batch_size, case.batch_size)
    run["img_s"] = sum(run["epoch_img_s"]) / len(run["epoch_img_s"])
    run["first_step_s"] = run["steps_s"][0]
    run["machine_share"] = run["cpu_s"] / max(run["machine_busy_s"], 1e-9)
    return run


def quiet_turns(sides: dict[str, Any], pairs: int, min_share: float, tries: int = 3) -> dict[str, list[dict]]:
    """taking_turns, a round at a time, with a round run again while one of its runs had less than `min_share` of
    the machine (at most `tries` times; the last try counts). The runs set aside are kept under "contended"."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    runs["contended"] = []
    for round_ in range(pairs):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for attempt in range(tries):
            done = {}
            for name in order:
                done[name] = sides[name]()
                print(f"  round {round_ + 1}, {name}: {done[name]['img_s']:.1f} img/s, first step "
                      f"{done[name]['first_step_s']:.2f} s, peak RSS {done[name]['peak_rss_mb']:.0f} MB, "
                      f"{done[name]['machine_share']:.0%} of the machine", file=sys.stderr, flush=True)
            if attempt == tries - 1 or all(run["machine_share"] >= min_share for run in done.values()):
                break
            runs["contended"].append(done)
        for name, run in done.items():
            runs[name].append(run)
    return runs


def compare(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each side's medians and ranges, and the pairs' ratios (trial / timm)."""
    keys = [*FIGURES, "wall_s", "machine_share", "steal_s"]
    found: dict[str, Any] = {side: {key: spread([run[key] for run in runs[side]]) for key in keys}
                             for side in ("trial", "timm")}
    found["ratio"] = {key: pair_ratios([run[key] for run in runs["trial"]], [run[key] for run in runs["timm"]])
                      for key in FIGURES}
    found["runs"] = runs
    return found
