"""Time a training script's optimiser steps from outside it: the one clock of the start-up, per-epoch and memory
figures, the same for trial.py and for timm's train.py.

    python -m benchmarks.step_clock SCRIPT [ARGS...]

Runs SCRIPT as `python SCRIPT ARGS...` would (its folder first on sys.path, run as __main__) with a global optimiser
hook (torch.optim.optimizer.register_optimizer_step_post_hook, which sees every optimiser's step without a change to
the script) recording the wall-clock time of each step: time.time(), comparable with the parent's clock at spawn, so
the parent gets process start -> each step. When the process ends (atexit: after the script's own end), or at the
STEP_CLOCK_STOP-th step when that is set (then it exits at once, with no teardown measured), it prints one line on
stdout: {"step_clock": {"steps": [...], "peak_rss_mb": ..., "step_peak_rss_mb": [...]}} (the peak by each step: where
the process's peak memory is reached). torch is imported here first, which both scripts import
first anyway, so both pay the same for this wrapper."""
from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

steps: list[float] = []
step_peaks: list[float] = []
stop_at = int(os.environ.get("STEP_CLOCK_STOP", "0"))


def peak_rss_mb() -> float:
    """This process's own peak resident memory: VmHWM of /proc/self/status, which a new program's memory map starts
    afresh. Not getrusage's ru_maxrss: Linux carries it across exec, and subprocess starts children with vfork, so
    it reports the (larger) parent's peak."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def emit() -> None:
    clock = {"steps": steps, "peak_rss_mb": peak_rss_mb(), "step_peak_rss_mb": step_peaks}
    sys.stdout.write("\n" + json.dumps({"step_clock": clock}) + "\n")
    sys.stdout.flush()


def after_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    steps.append(time.time())
    step_peaks.append(peak_rss_mb())  # a read of /proc/self/status: some 20 microseconds
    if len(steps) == stop_at:
        emit()
        os._exit(0)


if __name__ == "__main__":
    register_optimizer_step_post_hook(after_step)
    atexit.register(emit)
    script = os.path.abspath(sys.argv[1])
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` sets it (-m put the working folder there)
    runpy.run_path(script, run_name="__main__")
