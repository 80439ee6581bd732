"""Start-up: process start to the first optimiser step, and the peak RSS by then, of trial.py against timm's
train.py (when --timm_dir is given) on the same images, taking turns; and where the trial's start-up goes: its
imports (python -X importtime) and, in this process, the data set's scan, the image cache's lookup, the model, the
loader workers' first batch and the first step."""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from typing import Any

from benchmarks.common import bare_env, clocked, import_profile, pair_ratios, run_checked, spread, taking_turns
from benchmarks.runner import Bench, Measure
from benchmarks.trial_speed.fixtures import trial_params
from benchmarks.trial_speed.same_images import Case, SameImages, same_images, timm_args, timm_script, trial_args
from benchmarks.trial_speed.timm_train import cases
from harness.data.image_cache import fingerprint
from harness.fit.setup import FitSetup, Split, load_data, prepare_machine
from harness.train.passes import train_one_epoch
from harness.validation.holdout import holdout_split
from models import create_model


class Startup(Measure):
    name = "startup"
    help = "process start to the first optimiser step and peak RSS then (trial.py, timm's train.py), and why"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--startup_rounds", type=int, default=5,
                            help="turns of each side (the first case of --timm_cases, on its images)")

    def run(self, bench: Bench) -> dict[str, Any]:
        args = bench.args
        images = same_images(bench, args.timm_people, args.timm_img_size)
        case = cases(args, bench.device.type)[0]
        output = bench.scratch / "out"
        sides = {"trial": lambda: clocked(trial_args(images, case, output, []), stop_at=1)}
        if args.timm_dir is not None:
            script = timm_script(args.timm_dir)
            sides["timm"] = lambda: clocked(timm_args(script, images, case, output), stop_at=1)
        runs = taking_turns(sides, args.startup_rounds)
        figures: dict[str, Any] = {"case": case.label, "rounds": args.startup_rounds, "runs": runs,
                                   "reference": "timm's train.py"}
        for side, side_runs in runs.items():
            for run in side_runs:
                run.pop("log")
            figures[side] = {"first_step_s": spread([run["steps_s"][0] for run in side_runs]),
                             "peak_rss_mb": spread([run["peak_rss_mb"] for run in side_runs])}
        if "timm" in runs:
            figures["ratio"] = {"first_step_s": pair_ratios([r["steps_s"][0] for r in runs["trial"]],
                                                            [r["steps_s"][0] for r in runs["timm"]]),
                                "peak_rss_mb": pair_ratios([r["peak_rss_mb"] for r in runs["trial"]],
                                                           [r["peak_rss_mb"] for r in runs["timm"]])}
        profile = run_checked([sys.executable, "-X", "importtime", "-m", "benchmarks.step_clock",
                               *trial_args(images, case, output, [])], bare_env(STEP_CLOCK_STOP="1"))
        figures["imports_s"] = import_profile(profile.stderr)
        figures["phases_s"] = phases(bench, images, case)
        return figures

    def report(self, r: dict[str, Any]) -> list[str]:
        trial = r["trial"]
        lines = [f"Start-up to the first optimiser step ({r['case']}, {r['rounds']} turns, medians and ranges): "
                 f"trial {trial['first_step_s']['median']:.2f} s ({trial['first_step_s']['min']:.2f}-"
                 f"{trial['first_step_s']['max']:.2f}), peak RSS {trial['peak_rss_mb']['median']:.0f} MB"]
        if "timm" in r:
            timm, ratio = r["timm"], r["ratio"]
            first = timm["first_step_s"]
            lines.append(f"{r.get('reference', 'timm train.py')} {first['median']:.2f} s ({first['min']:.2f}-"
                         f"{first['max']:.2f}), peak RSS {timm['peak_rss_mb']['median']:.0f} MB; "
                         f"trial / timm: {ratio['first_step_s']['median']:.2f}x, RSS "
                         f"{ratio['peak_rss_mb']['median']:.2f}x")
        lines.append("Trial imports (s, cumulative): " + ", ".join(f"{k} {v:.2f}" for k, v in r["imports_s"].items()))
        if r["phases_s"]:
            lines.append("After the imports (s): " + ", ".join(f"{k} {v:.3f}" for k, v in r["phases_s"].items()))
        return lines


def phases(bench: Bench, images: SameImages, case: Case) -> dict[str, float]:
    """What a trial does between its imports and its first step, timed in this process (imports done, page cache
    and image cache warm, as for a search's later trials)."""
    params = trial_params(bench, images.data, model=case.model, img_size=case.img_size, batch_size=case.batch_size,
                          num_workers=case.workers, amp="bf16" if case.precision == "bf16" else "off",
                          channels_last="true" if case.precision == "bf16" else "false")
    clock, found = time.perf_counter, {}
    start = clock()
    params, data = load_data(params)
    found["data set scan"], start = clock() - start, clock()
    fingerprint(data.train_set.root, data.train_set.paths)
    found["cache fingerprint"], start = clock() - start, clock()
    create_model(params.model, data.heads, False)
    found["model alone"], start = clock() - start, clock()
    setup = FitSetup(params, data, prepare_machine(params),
                     partial(create_model, params.model, data.heads, False, "", params.fast_swish))
    fit = setup.fit(Split(1, *holdout_split(params, data)))
    found["fit: model, loaders (cache lookup), optimiser"], start = clock() - start, clock()
    first = next(iter(fit.loaders.train))
    found["workers' first batch"], start = clock() - start, clock()
    train_one_epoch(fit.model, [first], fit.train_step())
    found["first step"] = clock() - start
    return found
