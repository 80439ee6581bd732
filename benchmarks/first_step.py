"""Run a training script until its first optimiser step, then exit: the wrapper of the start-up measurement.

    python benchmarks/first_step.py SCRIPT [ARGS...]

Prints one JSON line on stdout when the script's first optimizer.step() returns: the wall-clock time then
(`time.time()`, comparable with the parent's clock at spawn, so the parent gets process start -> first step) and
the process's peak resident memory so far. Then it exits at once (os._exit: no teardown is measured). The same
wrapper runs trial.py and the timm-style reference (benchmarks/timm_style_first_step.py), so both pay the same
harness: torch is imported here first, which both scripts import first anyway, and a global optimiser hook
(torch.optim.optimizer.register_optimizer_step_post_hook) sees the step without any change to the script.

FIRST_STEP_AFTER=N waits for the N-th step instead (peak memory of a few steps of training)."""
from __future__ import annotations

import json
import os
import resource
import runpy
import sys
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

steps = 0
wanted = int(os.environ.get("FIRST_STEP_AFTER", "1"))


def _after_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    global steps
    steps += 1
    if steps >= wanted:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sys.stdout.write("\n" + json.dumps({"first_step_at": time.time(), "steps": steps,
                                            "peak_rss_mb": peak_kb / 1024}) + "\n")
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    register_optimizer_step_post_hook(_after_step)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    sys.exit("the script ended without an optimiser step")
