"""What several measures share: the machine's description, runs taking turns, medians with their ranges, running a
script under the step clock, and the import profile."""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
TRIAL = ROOT / "trial.py"
T = TypeVar("T")


def machine(device: Any = None) -> str:
    """'AMD EPYC ..., 2 cores, no GPU; torch 2.x, Python 3.11' (the GPU's name when one trains)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, Python {platform.python_version()}"


def taking_turns(sides: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Every side once per round, the order reversed every other round, so that drift in the machine's speed falls
    on all sides alike."""
    results: dict[str, list[T]] = {name: [] for name in sides}
    for round_ in range(rounds):
        for name in (list(sides) if round_ % 2 == 0 else list(sides)[::-1]):
            results[name].append(sides[name]())
    return results


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range: the figure and how far the runs strayed from it."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pair_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float]:
    """The spread of the ratios of runs that took turns: drift between rounds cancels within a pair."""
    return spread([a / b for a, b in zip(numerators, denominators)])


def bare_env(**changes: str) -> dict[str, str]:
    """The environment of a measured process: no NNI variables (a trial then runs standalone)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("NNI_")}, **changes}


def run_checked(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT,
                timeout: float = 3600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, cwd=cwd,
                          env=dict(env) if env is not None else bare_env(), timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, command[:3]))} ... failed ({done.returncode}):\n"
                           f"{done.stdout[-1500:]}{done.stderr[-3000:]}")
    return done


def trial_command(data: Path, output: Path, cache_dir: Path, *flags: str) -> list[str]:
    """A standalone trial that keeps nothing between runs but the image cache."""
    return [str(TRIAL), "--data_dir", str(data), "--output_dir", str(output), "--cache_dir", str(cache_dir),
            "--pretrained", "false", *flags]


def cpu_times() -> list[int]:
    """The machine's CPU time so far, in clock ticks: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as stat:
        return [int(value) for value in stat.readline().split()[1:9]]


def clocked(script_and_args: Sequence[str], env: Mapping[str, str] | None = None, stop_at: int = 0,
            cwd: Path = ROOT, timeout: float = 3600) -> dict[str, Any]:
    """One run of a training script under benchmarks/step_clock.py: seconds from spawn to each optimiser step, the
    main process's peak RSS, the wall time, and how much of the machine it had (its process tree's CPU seconds
    against the whole machine's busy seconds meanwhile; steal is time the hypervisor gave to other machines)."""
    env = dict(env if env is not None else bare_env(), STEP_CLOCK_STOP=str(stop_at))
    ticks, before, usage = os.sysconf("SC_CLK_TCK"), cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    done = run_checked([sys.executable, "-m", "benchmarks.step_clock", *script_and_args], env, cwd, timeout)
    wall = time.time() - spawned
    after, used = cpu_times(), resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((line for line in done.stdout.splitlines()[::-1] if line.startswith('{"step_clock"')), None)
    if line is None:
        raise RuntimeError(f"{script_and_args[0]} printed no step clock:\n{done.stderr[-2000:]}")
    clock = json.loads(line)["step_clock"]
    delta = [(b - a) / ticks for a, b in zip(before, after)]
    return {"steps_s": [round(t - spawned, 4) for t in clock["steps"]], "peak_rss_mb": clock["peak_rss_mb"],
            "step_peak_rss_mb": clock["step_peak_rss_mb"],
            "wall_s": wall, "cpu_s": (used.ru_utime + used.ru_stime) - (usage.ru_utime + usage.ru_stime),
            "machine_busy_s": sum(delta[:3]) + sum(delta[5:7]), "steal_s": delta[7], "log": done.stdout[-3000:]}


def epoch_rates(steps_s: Sequence[float], steps_per_epoch: int, batch_size: int) -> list[float]:
    """Training images per second of each epoch from its optimiser steps' times: the images of the steps after its
    first over the time from its first step's end to its last's (the first step of an epoch also waits for the
    epoch's first batch, and the first of a run builds the kernels: start-up, counted there)."""
    if len(steps_s) % steps_per_epoch or not steps_s:
        raise RuntimeError(f"{len(steps_s)} optimiser steps are not whole epochs of {steps_per_epoch}")
    epochs = [steps_s[i:i + steps_per_epoch] for i in range(0, len(steps_s), steps_per_epoch)]
    return [(len(epoch) - 1) * batch_size / (epoch[-1] - epoch[0]) for epoch in epochs]


def import_profile(importtime: str, top: int = 8) -> dict[str, float]:
    """Cumulative seconds of the largest top-level packages in `python -X importtime` output."""
    packages: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  "):  # imported by another module: counted in its parent's cumulative time
            continue
        root = name.strip().split(".")[0]
        packages[root] = packages.get(root, 0.0) + int(cumulative) / 1e6
    return dict(sorted(packages.items(), key=lambda item: -item[1])[:top])
