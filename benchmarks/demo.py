"""The demo experiment end to end, this checkout against an earlier commit, on the same machine in one run.

    python -m benchmarks.demo [--baseline c360ef8] [--rounds 2] [--out bench_out/demo.json]

Each side runs `python -m harness.experiment` on its own config.demo.yml, timed from `nnictl create` to the
follower's summary after the last trial (what `scripts/demo.sh` makes a user wait for; the web UI is stopped
afterwards, untimed), with the same inputs: one generated demo data set (120 people, 300 eval
images), an empty image cache of its own (as on a new machine), and the same search space and TPE seed, so that
both sides train the same four configurations (the baseline's search_space.demo.json: keys both sides know; with
TPE's first 20 suggestions random, a seed fixes them). The sides take turns, the first side alternating per
round, so drift in the machine's speed falls on both. --shipped also times this checkout's demo as shipped (its
own search space, unseeded: what `scripts/demo.sh` does), once.

The baseline is extracted with `git archive` into a temporary folder (the working tree and .git are not
touched) and runs with this checkout's virtual environment. The default, c360ef8, is the project as it was before
the speed work (README "Speed"): fp32 on every CPU, one trial at a time using every core, torch's default
optimiser implementation, and the interpreter's full teardown at the end of each trial.

Prints a table and the trials' timeline (NNI's own start and end times per trial), and writes every number to --out."""
from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import ROOT, machine
from harness.atomic import write_json
from harness.data.demo import generate
from harness.experiment.nnictl import free_port, stop

SEED = 7  # TPE's seed: any fixed number gives both sides the same four configurations


def extract(commit: str, folder: Path) -> Path:
    """The tree of `commit` in `folder`, without touching the working tree or .git's worktree list."""
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def staged_config(tree: Path, scratch: Path, name: str, space: Path | None, seed: int | None,
                  serial: bool = False) -> Path:
    """`tree`'s config.demo.yml, made to live in `scratch`: absolute code and search-space paths, and the TPE seed;
    `serial`: one trial at a time on every core, as the demo ran before its trials went side by side."""
    config = yaml.safe_load((tree / "config.demo.yml").read_text())
    if serial:
        config["trialConcurrency"] = 1
        config["trialCommand"] = config["trialCommand"].replace("--cpu_threads 1", "--cpu_threads 0")
    config["trialCodeDirectory"] = str(tree)
    config["searchSpaceFile"] = str(space or tree / config["searchSpaceFile"])
    if "codeDirectory" in config["tuner"]:  # a custom tuner (harness.tuners) is imported from its tree
        config["tuner"]["codeDirectory"] = str(tree / config["tuner"]["codeDirectory"])
    if seed is not None:
        config["tuner"] = {**config["tuner"], "classArgs": {**config["tuner"].get("classArgs", {}), "seed": seed}}
    path = scratch / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def experiments(working: Path) -> list[Path]:
    """The experiment folders NNI made in `working` (not its `_latest` link, not the staged configs)."""
    return [p for p in working.glob("*") if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")] \
        if working.is_dir() else []


def run_demo(tree: Path, config: Path, data: Path, scratch: Path, name: str) -> dict:
    """One demo experiment to its end: wall-clock seconds, and each trial's parameters and NNI times."""
    working = scratch / f"experiments-{name}"
    command = [sys.executable, "-m", "harness.experiment", "--config", str(config), "--data_dir", str(data),
               "--working_dir", str(working), "--port", str(free_port()), "--",
               "--cache_dir", str(scratch / f"cache-{name}")]
    start = time.perf_counter()
    try:  # timed until the follower's summary, as a user waits for it; the web UI's stop is not counted
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=4 * 3600)
        seconds = time.perf_counter() - start
    finally:
        for experiment in experiments(working):
            stop(experiment.name)
    if done.returncode:
        raise RuntimeError(f"{name}: the demo failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    trials = []
    for params in sorted((p for e in experiments(working) for p in e.glob("*/params.json")),
                         key=lambda path: path.stat().st_mtime):
        values = json.loads(params.read_text())
        metrics = [json.loads(line) for line in (params.parent / "metrics.jsonl").read_text().splitlines()]
        trials.append({key: values[key] for key in ("model", "batch_size", "classification", "criterion")} | {
            "epochs": len(metrics), "epoch_seconds": sum(m["seconds"] for m in metrics),
            "started": params.stat().st_mtime})
    return {"seconds": seconds, "trials": trials, "log": done.stdout[-4000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="c360ef8", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shipped", action="store_true", help="also time the demo as shipped (unseeded), once")
    parser.add_argument("--sides", default="baseline,current",
                        help="which sides to run, comma-separated: baseline, current, current-serial (this checkout "
                             "with one trial at a time on every core)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "demo.json")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: experiments, data, caches")
    args = parser.parse_args(argv)
    sides = args.sides.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True)
            scratch = args.keep.resolve()
        start = time.perf_counter()
        data = generate(scratch / "demo", people=120, eval_images=300, seed=0)
        generation_s = time.perf_counter() - start
        baseline = extract(args.baseline, scratch / "baseline")
        space = baseline / "search_space.demo.json"
        trees = {"baseline": baseline, "current": ROOT, "current-serial": ROOT}
        configs = {name: staged_config(trees[name], scratch, name, space, SEED, serial=name == "current-serial")
                   for name in sides}
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            for name in (sides if round_ % 2 == 0 else sides[::-1]):
                result = run_demo(trees[name], configs[name], data, scratch, f"{name}-{round_}")
                runs[name].append(result)
                print(f"round {round_ + 1} {name}: {result['seconds']:.0f} s", flush=True)
        medians = {name: statistics.median(r["seconds"] for r in side) for name, side in runs.items()}
        results: dict = {"machine": machine(), "baseline": args.baseline, "seed": SEED, "rounds": args.rounds,
                         "data_generation_s": generation_s, "runs": runs, "seconds": medians}
        if {"baseline", "current"} <= set(sides):
            results["speedup"] = statistics.median(
                b["seconds"] / c["seconds"] for b, c in zip(runs["baseline"], runs["current"]))
        if args.shipped:
            shipped = staged_config(ROOT, scratch, "shipped", None, None)
            results["shipped"] = run_demo(ROOT, shipped, data, scratch, "shipped")
    write_json(results, args.out)
    print(report(results))
    return 0


def report(r: dict) -> str:
    lines = [f"Demo data generated in {r['data_generation_s']:.1f} s (not counted below).", "",
             "| side | " + " | ".join(f"round {i + 1}, s" for i in range(r["rounds"])) + " | median, s |",
             "|---|" + "---:|" * (r["rounds"] + 1)]
    for name, side in r["runs"].items():
        label = f"{name} ({r['baseline']})" if name == "baseline" else name
        lines.append(f"| {label} | " + " | ".join(f"{run['seconds']:.0f}" for run in side) +
                     f" | {r['seconds'][name]:.0f} |")
    if "speedup" in r:
        lines += ["", f"Speed-up (median of the rounds' baseline / current): {r['speedup']:.2f}x"]
    for name, side in r["runs"].items():
        lines += ["", f"{name}, first round's trials (seconds inside their epochs):", *trial_lines(side[0])]
    if "shipped" in r:
        lines += ["", f"As shipped (its own search space, unseeded): {r['shipped']['seconds']:.0f} s",
                  *trial_lines(r["shipped"])]
    return "\n".join(lines)


def trial_lines(run: dict) -> list[str]:
    return [f"  {t['model']} batch {t['batch_size']} {t['classification']} {t['criterion']}: {t['epochs']} epochs, "
            f"{t['epoch_seconds']:.0f} s" for t in run["trials"]]


if __name__ == "__main__":
    raise SystemExit(main())
