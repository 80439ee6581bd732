"""The slow mode of issue 26 (trial.py at 25 images/s in some runs, 30 in others, timm's train.py steady): trial.py
and timm's train.py on the timm comparison's images, taking turns, on a quiet machine and beside a process that
keeps part of the machine busy (a loop that spins for a share of every 0.1 s and sleeps the rest: an editor's
indexer, a browser tab, a second trial's loader), with each run's share of the machine's busy CPU time.

--contention_other_trial runs another checkout's trial.py beside them on the quiet machine (the code the issue
measured: `git worktree add ../issue26 e52fe8e`), with a cache folder of its own (the cache's format changed)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import spread, taking_turns
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.same_images import Case, same_images, timm_args, timm_script, trial_args
from benchmarks.trial_speed.timm_train import run_side

# Spins for `busy` of every 0.1 s and sleeps the rest: the share of one core it takes.
SPINNER = """import sys, time
busy = float(sys.argv[1])
while True:
    started = time.perf_counter()
    while time.perf_counter() - started < busy * 0.1:
        pass
    time.sleep((1 - busy) * 0.1)
"""
MAX_LOAD = 0.9  # of the whole machine: beyond it the runs measure the spinners, not the scripts


def spinner_shares(load: float, cores: int) -> list[float]:
    """The busy share of each spinner process that together take `load` of a `cores`-core machine: whole cores
    first, then the remainder ([] for a quiet machine)."""
    if not 0 <= load <= MAX_LOAD:
        raise ValueError(f"--contention_loads {load}: expected a share of the machine from 0 to {MAX_LOAD}")
    busy = round(load * cores, 6)
    return [1.0] * int(busy) + ([busy - int(busy)] if busy - int(busy) > 1e-6 else [])


@contextmanager
def spinning(load: float) -> Iterator[list[subprocess.Popen]]:
    """Spinner processes taking `load` of the machine while the block runs; stopped after it, whatever happens."""
    processes = [subprocess.Popen([sys.executable, "-c", SPINNER, str(share)], stdout=subprocess.DEVNULL)
                 for share in spinner_shares(load, os.cpu_count() or 1)]
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


def other_trial_command(command: list[str], script: Path, cache_dir: Path) -> list[str]:
    """trial.py's command line with another checkout's trial.py and its own image cache."""
    changed = [str(script), *command[1:]]
    changed[changed.index("--cache_dir") + 1] = str(cache_dir)
    return changed


class Contention(Measure):
    name = "contention"
    help = "trial.py and timm's train.py on a quiet machine and beside a process taking part of it (issue 26)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--contention_loads", default="0,0.1,0.2",
                            help="shares of the machine the other process takes, one set of rounds each")
        parser.add_argument("--contention_rounds", default="3,2,2", help="rounds per load (one number: for all)")
        parser.add_argument("--contention_other_trial", type=Path,
                            help="another checkout's trial.py, run beside them at load 0")

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        images = same_images(bench, args.timm_people, args.timm_img_size)
        case = Case("resnet18", "bf16", args.timm_img_size, args.timm_batch_size, args.timm_workers, 1,
                    bench.device.type)
        output = bench.scratch / "out"
        trial = trial_args(images, case, output, [])
        sides = {"trial": lambda: run_side(images, case, trial, output),
                 "timm": lambda: run_side(images, case, timm_args(timm_script(args.timm_dir), images, case, output),
                                          output)}
        loads = [float(x) for x in args.contention_loads.split(",")]
        rounds = [int(x) for x in args.contention_rounds.split(",")]
        rounds = rounds * len(loads) if len(rounds) == 1 else rounds
        if len(rounds) != len(loads):
            raise SystemExit(f"--contention_rounds {args.contention_rounds}: expected one number, or one per load of "
                             f"--contention_loads {args.contention_loads}")
        rows = []
        for load, count in zip(loads, rounds):
            these = dict(sides)
            if load == 0 and args.contention_other_trial:
                other = other_trial_command(trial, args.contention_other_trial.resolve(), bench.scratch / "cache-other")
                run_side(images, case, other, output)  # builds its cache: not timed
                these["other trial"] = lambda other=other: run_side(images, case, other, output)
            with spinning(load):
                runs = taking_turns(these, count)
            rows.append({"load": load, "rounds": count, **{
                name: {"img_s": spread([r["img_s"] for r in side]), "runs_img_s": [r["img_s"] for r in side],
                       "machine_share": spread([r["machine_share"] for r in side])} for name, side in runs.items()}})
        quiet = next((row for row in rows if row["load"] == 0), None)
        for row in rows:
            for name in ("trial", "timm"):
                row[name]["vs_quiet"] = row[name]["img_s"]["median"] / quiet[name]["img_s"]["median"] if quiet else None
        return {"case": case.label, "train_images": images.train_images,
                "other_trial": str(args.contention_other_trial or ""), "rows": rows}

    def report(self, r: dict[str, Any]) -> list[str]:
        lines = [f"{r['case']}, {r['train_images']} training images, one epoch; train images/s, medians (ranges), and "
                 "the share of the machine's busy CPU time that was the run's own", "",
                 "| other process takes | trial.py img/s | against quiet | timm img/s | against quiet | "
                 "share of the machine (trial / timm) |", "|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            trial, timm = row["trial"], row["timm"]
            lines.append(f"| {row['load']:.0%} ({row['rounds']} rounds) | {_fmt(trial['img_s'])} | "
                         f"{_ratio(trial['vs_quiet'])} | {_fmt(timm['img_s'])} | {_ratio(timm['vs_quiet'])} | "
                         f"{trial['machine_share']['median']:.1%} / {timm['machine_share']['median']:.1%} |")
        other = next((row["other trial"] for row in r["rows"] if "other trial" in row), None)
        if other:
            lines.append(f"\n{r['other_trial']} on the quiet machine: {_fmt(other['img_s'])} img/s (runs "
                         f"{', '.join(f'{x:.1f}' for x in other['runs_img_s'])}), "
                         f"{other['machine_share']['median']:.1%} of the machine")
        return lines


def _fmt(figure: dict[str, float]) -> str:
    return f"{figure['median']:.1f} ({figure['min']:.1f}-{figure['max']:.1f})"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"  # None: no quiet rounds (--contention_loads without 0)
