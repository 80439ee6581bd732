"""Run a training script until its first optimiser step, then exit: the wrapper of the start-up measurement.

    python benchmarks/first_step.py SCRIPT [ARGS...]

Prints one JSON line on stdout when the script's first optimizer.step() returns: the wall-clock time then
(`time.time()`, comparable with the parent's clock at spawn, so the parent gets process start -> first step) and
the process's peak resident memory so far. Then it exits at once (os._exit: no teardown is measured). The same
wrapper runs trial.py and the timm-style reference (benchmarks/timm_style_first_step.py), so both pay the same
harness: torch is imported here first, which both scripts import first anyway, and a global optimiser hook
(torch.optim.optimizer.register_optimizer_step_post_hook) sees the step without any change to the script.

FIRST_STEP_AFTER=N waits for the N-th step instead and adds the seconds from the first step to it (a training rate
and the peak memory of N steps, start-up excluded)."""
from __future__ import annotations

import json
import os
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

steps, first_at = 0, 0.0
wanted = int(os.environ.get("FIRST_STEP_AFTER", "1"))


def _after_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    global steps, first_at
    steps += 1
    now = time.time()
    first_at = first_at or now
    if steps >= wanted:
        sys.stdout.write("\n" + json.dumps({"first_step_at": first_at, "steps": steps, "after_first_s": now - first_at,
                                            "peak_rss_mb": peak_rss_mb()}) + "\n")
        sys.stdout.flush()
        os._exit(0)


def peak_rss_mb() -> float:
    """This process's own peak resident memory: VmHWM of /proc/self/status, which a new program's memory map
    starts afresh. Not getrusage's ru_maxrss: Linux carries it across exec, and subprocess starts children with
    vfork, so it reports the (larger) parent's peak."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


if __name__ == "__main__":
    register_optimizer_step_post_hook(_after_step)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    sys.exit("the script ended without an optimiser step")
