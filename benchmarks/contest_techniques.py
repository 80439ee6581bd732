"""Validation macro-F1 on the demo data with each contest technique off and on, same seeds and budget.

    python -m benchmarks.contest_techniques [--task multi] [--seeds 1,2,3] [--people 60] [--epochs 6]
                                            [--img_size 64] [--jobs 2] [--out benchmarks/contest_techniques.json]

Each row is a pair of standalone trial.py runs per seed (resnet10t, CPU, one thread each) that differ only in the
technique's flag; the figure is the last epoch's val_f1 from metrics.jsonl (for --folds 3, the cross-validated
val_f1 of every training image from kfold.json). The task is `multi` by default: the 18 classes, whose macro-F1
weighs the rare ones (the 60+ age group in every mask and gender combination: what class weights, the sampler and
--old_age are for) like the others, and which a small model does not learn perfectly in this budget (the `age`
task alone reached a macro-F1 of 0.997 without any technique, leaving nothing to measure). The multi-head row
is `multi` against `multihead`. Runs with the same parameters (every row's "off" at a seed) run once.

Why several seeds: the demo's validation set is a few dozen people, where one image moves macro-F1 by a percent or
more; the spread of off-against-on differences over the seeds says which differences are larger than that noise.
The seed sets the trial's initial weights, shuffling, augmentations and validation people (the person split follows
--seed): a seed's "off" and "on" runs are judged on the same images, and each seed on other people."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import ROOT, TRIAL
from harness.atomic import write_json
from harness.data.demo import generate
from harness.params import parse_params

# Each technique: (flags off, flags on). "Off" is the default value, so the rows share one baseline per seed.
TECHNIQUES = {
    "tta": (["--tta", "none"], ["--tta", "hflip"]),
    "mixup": (["--mixup", "0"], ["--mixup", "0.2"]),
    "cutmix": (["--cutmix", "0"], ["--cutmix", "1.0", "--mix_prob", "0.5"]),
    "class_weights": (["--class_weights", "none"], ["--class_weights", "inverse"]),
    "sampler": (["--sampler", "none"], ["--sampler", "weighted"]),
    "old_age": (["--old_age", "60"], ["--old_age", "58"]),
    "ema": (["--ema_decay", "0"], ["--ema_decay", "0.99"]),
    # README "K-fold and multi-head models": 18 classes from one softmax against three heads.
    "multihead": (["--classification", "multi"], ["--classification", "multihead"]),
    # The holdout's val_f1 (its 20% of the people) against the 3-fold cross-validated val_f1 of every training
    # image: two different validation sets, so this row says that K-fold runs, not that it scores higher.
    "folds": (["--folds", "1"], ["--folds", "3"]),
}


def budget(task: str, epochs: int, img_size: int, seed: int) -> list[str]:
    return ["--model", "resnet10t", "--pretrained", "false", "--img_size", str(img_size), "--batch_size", "16",
            "--lr", "0.003", "--num_workers", "0", "--epochs", str(epochs), "--seed", str(seed),
            "--classification", task, "--dump_threshold", "1", "--checkpoint", "none", "--tensorboard", "false"]


def same_run(base: list[str], flags: list[str]) -> str:
    """Runs with the same parameters give the same numbers (CPU, no loader workers, one seed): each runs once."""
    return json.dumps(parse_params([*base, *flags], None).to_dict(), sort_keys=True)


def val_f1(data: Path, output: Path, flags: list[str]) -> float:
    # One thread per trial: the figures then do not depend on --jobs (a reduction's order follows the threads),
    # and on a shared machine parallel single-threaded trials waste less time waiting on each other.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(TRIAL), "--data_dir", str(data), "--output_dir",
                           str(output), *flags], capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode:
        raise RuntimeError(f"trial.py {' '.join(flags)} failed: {done.stderr.strip().splitlines()[-1:]}")
    cross_validated = list(output.rglob("kfold.json"))  # K-fold: the last epoch's OOF score, not one fold's
    if cross_validated:
        return json.loads(cross_validated[0].read_text())["epochs"][-1]["val_f1"]
    metrics = next(output.rglob("metrics.jsonl")).read_text().splitlines()
    return json.loads(metrics[-1])["val_f1"]


def summary(off: list[float], on: list[float]) -> dict:
    differences = [b - a for a, b in zip(off, on)]
    return {"off": off, "on": on, "off_mean": statistics.mean(off), "on_mean": statistics.mean(on),
            "difference_mean": statistics.mean(differences), "difference_range": [min(differences), max(differences)],
            "better_in": sum(d > 0 for d in differences), "worse_in": sum(d < 0 for d in differences)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="multi", help="the classification of every row but multihead's")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--img_size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2, help="trials run at once")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "contest_techniques.json")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "demo", people=args.people, eval_images=40, width=96, height=128, seed=3)
        runs: dict[str, tuple[Path, list[str]]] = {}  # same_run key -> (output folder, flags): each run once
        for seed in seeds:
            base = budget(args.task, args.epochs, args.img_size, seed)
            for name, (off, on) in TECHNIQUES.items():
                for side, flags in (("off", off), ("on", on)):
                    runs.setdefault(same_run(base, flags), (Path(tmp) / f"{name}-{side}-{seed}", [*base, *flags]))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {key: pool.submit(val_f1, data, output, flags) for key, (output, flags) in runs.items()}
            scores = {key: future.result() for key, future in futures.items()}
    rows = {}
    for name, (off, on) in TECHNIQUES.items():
        bases = [budget(args.task, args.epochs, args.img_size, seed) for seed in seeds]
        rows[name] = {"flags_on": " ".join(on), **summary([scores[same_run(b, off)] for b in bases],
                                                          [scores[same_run(b, on)] for b in bases])}
    result = {"task": args.task, "seeds": seeds, "people": args.people, "epochs": args.epochs,
              "img_size": args.img_size, "validation_images": validation_images(args.people, seeds), "rows": rows}
    write_json(result, args.out)
    print(report(result))
    return 0


def validation_images(people: int, seeds: list[int]) -> list[int]:
    """The holdout's validation images at each seed (the K-fold row scores every training image instead)."""
    from harness.data.layouts import load_train
    from harness.data.split import split_indices

    with tempfile.TemporaryDirectory() as tmp:
        train_set = load_train(generate(Path(tmp) / "demo", people=people, eval_images=1, width=32, height=32,
                                        seed=3))
        return [len(split_indices(train_set.groups, train_set.group_strata, 0.2, seed)[1]) for seed in seeds]


def report(result: dict) -> str:
    sizes = result["validation_images"]
    lines = [f"task {result['task']}, {len(result['seeds'])} seeds, {result['people']} people ({min(sizes)} to "
             f"{max(sizes)} validation images), {result['epochs']} epochs at {result['img_size']} px", "",
             "| technique | flag on | off, mean | on, mean | on - off, mean (min to max) | better / worse in |",
             "|---|---|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        low, high = row["difference_range"]
        lines.append(f"| {name} | `{row['flags_on']}` | {row['off_mean']:.3f} | {row['on_mean']:.3f} | "
                     f"{row['difference_mean']:+.3f} ({low:+.3f} to {high:+.3f}) | "
                     f"{row['better_in']} / {row['worse_in']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
