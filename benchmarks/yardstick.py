"""The yardstick: the harness's whole path against a plain timm run, the same wall-clock budget, on real photos,
scored on the held-out part (heldout_answers.csv, read only here).

    python -m benchmarks.yardstick --data data/real/face-mask [--minutes 15] [--reps 3] [--work bench_out/yardstick]
                                   [--out benchmarks/yardstick_face-mask.json]

The harness: an NNI search (config.single_label.yml's TPE + Medianstop, on the CPU: two trials at a time, one
thread each, small models at 64 px; search space below) for 2/3 of the budget; then `python -m ensemble --select`;
then, while the budget lasts, `trial.py --refit` of the best runs and the ensemble again with their CSVs in place
of their sources' (the submission is whichever blend was made last within the budget). The plain run:
benchmarks/plain_timm.py (timm's default recipe, every training image, as many epochs as fit the budget). The two
take turns, the order swapped every repetition. Scores: held-out accuracy and macro-F1; medians and ranges."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.real_photos import answers_of, held_out
from harness.atomic import write_json
from harness.experiment.config import load_config, with_overrides
from harness.outputs.reading import best_record, find_runs, read_run

ROOT = Path(__file__).resolve().parents[1]
SEARCH_SPACE = {
    "batch_size": {"_type": "choice", "_value": [16, 32]},
    "model": {"_type": "choice", "_value": ["resnet10t", "resnet18"]},
    "criterion": {"_type": "choice", "_value": ["cross_entropy", "label_smoothing", "focal"]},
    "lr": {"_type": "loguniform", "_value": [5e-4, 5e-3]},
    "optimizer": {"_type": "choice", "_value": ["adam", "adamw"]},
    "mixup": {"_type": "choice", "_value": [0, 0.2]},
    "cutmix": {"_type": "choice", "_value": [0, 1.0]},
    "mix_prob": {"_type": "choice", "_value": [0.5, 1.0]},
    "ema_decay": {"_type": "choice", "_value": [0, 0.99]},
    "tta": {"_type": "choice", "_value": ["none", "hflip"]},
}
TRIAL_FLAGS = ["--img_size", "64", "--epochs", "8", "--pretrained", "false", "--num_workers", "1", "--cpu_threads",
               "1", "--crop", "1.0", "--scheduler", "cosine", "--dump_threshold", "0.5", "--checkpoint", "best",
               "--tensorboard", "false"]
REFITS = 2  # the best runs refit, side by side


def search_config(args: argparse.Namespace, folder: Path, minutes: float) -> Path:
    config = with_overrides(load_config(ROOT / "config.single_label.yml"), ROOT, folder / "nni",
                            ["--data_dir", str(args.data.resolve()), *TRIAL_FLAGS], max_trials=200, cpu=True)
    (folder / "space.json").write_text(json.dumps(SEARCH_SPACE))
    # Absolute: NNI reads a relative searchSpaceFile from the config's own folder.
    config.update(searchSpaceFile=str((folder / "space.json").resolve()), trialConcurrency=2,
                  maxExperimentDuration=f"{int(minutes * 60)}s")
    config["assessor"]["classArgs"]["start_step"] = 3
    (folder / "config.yml").write_text(yaml.safe_dump(config))
    return folder / "config.yml"


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": float("nan"), "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(command: list[str], log: Path, timeout: float) -> int:
    with open(log, "a") as handle:
        try:
            return subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=max(timeout, 1)).returncode
        except subprocess.TimeoutExpired:
            return -1


def blend(args: argparse.Namespace, experiment: Path, name: str, log: Path, deadline: float) -> Path | None:
    out = experiment.parent / f"{name}.csv"
    code = run([sys.executable, "-m", "ensemble", "--from", str(experiment), "--select", "--info",
                str(args.data / "eval" / "info.csv"), "-o", str(out)], log, deadline - time.monotonic())
    soft = out.with_name(f"{out.stem}_multi_soft.csv")
    return soft if code == 0 and soft.is_file() else None


def best_runs(experiment: Path, count: int) -> list[Path]:
    runs = [read_run(folder) for folder in find_runs(experiment) if not folder.name.endswith("_refit")]
    scored = [(best_record([r for r in run.records if r.get("dumped")], "val_acc"), run) for run in runs]
    ranked = sorted(((record["val_acc"], run.folder) for record, run in scored if record), reverse=True)
    return [folder for _, folder in ranked[:count]]


def harness_path(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The search, the ensemble, the refits; the last blend made within the budget is the submission."""
    started, budget = time.monotonic(), args.minutes * 60
    deadline, log = started + budget, folder / "log.txt"
    folder.mkdir(parents=True, exist_ok=True)
    config = search_config(args, folder, args.minutes * 2 / 3)
    run([sys.executable, "-m", "harness.experiment", "--config", str(config), "--stop", "--timeout",
         str(budget * 2 / 3 + 60)], log, budget * 2 / 3 + 120)
    experiment = next(p for p in (folder / "nni").iterdir() if p.is_dir() and not p.name.startswith("."))
    submission, steps = blend(args, experiment, "ensemble", log, deadline), ["search", "ensemble"]
    refits = [subprocess.Popen([sys.executable, "trial.py", "--refit", str(run_folder)], cwd=ROOT,
                               stdout=open(log, "a"), stderr=subprocess.STDOUT)
              for run_folder in best_runs(experiment, REFITS)]
    for process in refits:
        try:
            process.wait(timeout=max(deadline - time.monotonic() - 20, 1))
        except subprocess.TimeoutExpired:
            process.kill()
    if all(p.returncode == 0 for p in refits) and time.monotonic() < deadline - 15:
        refit = blend(args, experiment, "ensemble_refit", log, deadline)
        submission, steps = (refit, steps + ["refit"]) if refit else (submission, steps)
    return {"seconds": time.monotonic() - started, "steps": steps, "csv": str(submission),
            "trials": sum(not run.name.endswith("_refit") for run in find_runs(experiment)),
            "refits_started": len(refits)}


def plain_path(args: argparse.Namespace, folder: Path, seed: int) -> dict[str, Any]:
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "plain.csv"
    run([sys.executable, "-m", "benchmarks.plain_timm", "--data", str(args.data), "--minutes", str(args.minutes),
         "--out", str(out), "--seed", str(seed)], folder / "log.txt", args.minutes * 60 * 1.5)
    return {"seconds": time.monotonic() - started, "csv": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.yardstick", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("bench_out/yardstick"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    answers = answers_of(args.data)
    reps = []
    for rep in range(args.reps):
        folder = args.work / args.data.name / f"rep{rep}"
        sides = {"harness": lambda f=folder: harness_path(args, f / "harness"),
                 "plain": lambda f=folder, r=rep: plain_path(args, f / "plain", r)}
        done = {side: sides[side]() for side in (("harness", "plain") if rep % 2 == 0 else ("plain", "harness"))}
        for result in done.values():
            result["scores"] = held_out(Path(result["csv"]), answers) if Path(result["csv"]).is_file() else None
        reps.append(done)
        print(f"rep {rep}: " + ", ".join(f"{side} {r['scores']}" for side, r in done.items()), flush=True)
    # A side that wrote no submission within its budget scores nothing that repetition (said in the figures).
    summary = {side: {metric: spread([r[side]["scores"][metric] for r in reps if r[side]["scores"]])
                      for metric in ("accuracy", "macro_f1")} for side in ("harness", "plain")}
    errors = {side: 1 - summary[side]["accuracy"]["median"] for side in summary}
    found = {"data": str(args.data), "minutes": args.minutes, "reps": reps, "medians": summary,
             "fewer_heldout_errors": 1 - errors["harness"] / errors["plain"] if errors["plain"] else None}
    write_json(found, args.out or Path("benchmarks") / f"yardstick_{args.data.name}.json")
    print(json.dumps(found["medians"]), f"harness makes {found['fewer_heldout_errors']:.0%} fewer held-out errors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
