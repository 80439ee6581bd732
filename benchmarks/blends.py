"""The ensemble's blends (caruana, weights, stack) on real trials of the demo data: their out-of-fit scores as
`python -m ensemble --select` prints them, and the held-out score of the submission each one writes.

    python -m benchmarks.blends [--data_seeds 1,2,3] [--people 60] [--epochs 6] [--jobs 2]
                                [--work DIR] [--out benchmarks/blends.json]

Per data seed: a demo data set (people x 7 photos, its eval images with their answers in eval_answers.csv, which no
selection sees), and 8 standalone 3-fold trials of the 18-class multi task (resnet10t and resnet18, cross-entropy
and focal, two trial seeds; 64 px, one thread each, every epoch dumped), whose out-of-fold validation CSVs hold every
training image. Then, for each --metric, `python -m ensemble --from EXPERIMENT --select --blend B` for each blend:
the printed out-of-fit scores (5-fold over the OOF rows, fixed fold seed), and the accuracy and macro-F1 of its
submission against the eval answers. --work keeps the data and trials there, and a later run with the same --work
reuses every data seed whose trials finished."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT
from ensemble.blends import BLENDS
from ensemble.cli import main as ensemble
from harness.atomic import write_json
from harness.data.demo import generate
from harness.metrics import accuracy, macro_f1

TRIALS = [(model, criterion, seed) for model in ("resnet10t", "resnet18") for criterion in ("cross_entropy", "focal")
          for seed in (1, 2)]
METRIC_NAMES = ("macro_f1", "accuracy")


def run_trial(data: Path, output: Path, model: str, criterion: str, seed: int, epochs: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    flags = ["--data_dir", str(data), "--output_dir", str(output), "--model", model, "--criterion", criterion,
             "--seed", str(seed), "--pretrained", "false", "--img_size", "64", "--batch_size", "16", "--lr", "0.003",
             "--num_workers", "0", "--cpu_threads", "1", "--epochs", str(epochs), "--folds", "3",
             "--classification", "multi", "--dump_threshold", "0", "--checkpoint", "none", "--tensorboard", "false"]
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), *flags], capture_output=True, text=True, cwd=ROOT,
                          env=env)
    if done.returncode:
        raise RuntimeError(f"trial.py {' '.join(flags)} failed: {done.stderr.strip().splitlines()[-1:]}")


def blend_scores(experiment: Path, data: Path, metric: str, blend: str, out: Path) -> dict:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert ensemble(["--from", str(experiment), "--select", "--metric", metric, "--blend", blend, "--info",
                         str(data / "eval" / "info.csv"), "-o", str(out)]) == 0
    text = printed.getvalue()
    out_of_fit = {name: float(score) for name, score in
                  re.findall(r"^  (caruana|weights|stack) +([\d.]+) / [\d.]+", text, re.M)}
    answers = pd.read_csv(data / "eval_answers.csv")
    submitted = pd.read_csv(out).set_index("ImageID").loc[answers["ImageID"], "ans"].to_numpy()
    truth = answers["ans"].to_numpy()
    return {"out_of_fit": out_of_fit, "held_out_accuracy": accuracy(truth, submitted),
            "held_out_macro_f1": macro_f1(truth, submitted, 18), "rows": int(re.search(r"over (\d+) validation",
                                                                                       text).group(1))}


def one_data_seed(seed: int, people: int, epochs: int, jobs: int, scratch: Path) -> dict:
    data, experiment = scratch / f"demo{seed}", scratch / f"runs{seed}"
    if not (experiment / "trained").is_file():
        generate(data, people=people, eval_images=300, width=96, height=128, seed=seed)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(run_trial, data, experiment, *trial, epochs) for trial in TRIALS]:
                future.result()
        (experiment / "trained").write_text("")
    return {metric: {blend: blend_scores(experiment / "standalone", data, metric, blend, scratch / "sub.csv")
                     for blend in BLENDS} for metric in METRIC_NAMES}


def report(result: dict) -> str:
    lines = [f"{len(result['data_seeds'])} demo data sets (seeds {result['data_seeds']}), {result['people']} people, "
             f"8 trials of 3 folds x {result['epochs']} epochs each", "",
             "| --metric | blend | out of fit, mean (per seed) | held-out accuracy, mean | held-out macro-F1, mean |",
             "|---|---|---:|---:|---:|"]
    for metric in METRIC_NAMES:
        for blend in BLENDS:
            rows = [result["seeds"][str(seed)][metric][blend] for seed in result["data_seeds"]]
            fits = [row["out_of_fit"][blend] for row in rows]
            lines.append(f"| {metric} | {blend} | {statistics.mean(fits):.3f} ({', '.join(f'{f:.3f}' for f in fits)})"
                         f" | {statistics.mean(r['held_out_accuracy'] for r in rows):.3f} | "
                         f"{statistics.mean(r['held_out_macro_f1'] for r in rows):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blends", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_seeds", default="1,2,3")
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, help="where the data and trials are kept (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "blends.json")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.data_seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = {str(seed): one_data_seed(seed, args.people, args.epochs, args.jobs, work) for seed in seeds}
    result = {"data_seeds": seeds, "people": args.people, "epochs": args.epochs, "seeds": results,
              "numpy": np.__version__}
    write_json(result, args.out)
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
