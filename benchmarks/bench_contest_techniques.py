"""Validation macro-F1 on the demo data with each contest technique off and on, same seed and budget.

Usage: python benchmarks/bench_contest_techniques.py [--out benchmarks/contest_techniques.json] [--jobs N]
Each row is two short trial.py runs (resnet10t, 32 px, 4 epochs, CPU, one thread each) that differ only in the
technique's flag; the figure is the last epoch's val_f1 from metrics.jsonl. The task is `age` (3 classes, the
oldest the rarest: the one class weights, the sampler and --old_age are for); 3 epochs of the 18-class task learnt
next to nothing (val_f1 0.14) and 10 reached only 0.36 on its 35 validation images of 15 classes, so no row could
have said anything there. Runs with the same parameters (every row's "off") are run once. The numbers show that a
flag runs end to end and its direction on this toy set (5 validation people), not what it gains on the contest."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.atomic import write_json  # noqa: E402
from harness.data.demo import generate  # noqa: E402
from harness.params import parse_params  # noqa: E402

BUDGET = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
          "--num_workers", "0", "--epochs", "4", "--seed", "42", "--classification", "age", "--dump_threshold", "1",
          "--checkpoint", "none", "--tensorboard", "false"]
TECHNIQUES = {"tta": (["--tta", "none"], ["--tta", "hflip"])}
# Mixing, class imbalance, weight averaging (each "off" is the default: the runs share one baseline).
TECHNIQUES.update({
    "mixup": (["--mixup", "0"], ["--mixup", "0.2"]),
    "cutmix": (["--cutmix", "0"], ["--cutmix", "1.0"]),
    "class_weights": (["--class_weights", "none"], ["--class_weights", "inverse"]),
    "sampler": (["--sampler", "none"], ["--sampler", "weighted"]),
    "old_age": (["--old_age", "60"], ["--old_age", "58"]),
    "ema": (["--ema_decay", "0"], ["--ema_decay", "0.99"]),
})
# K-fold and multi-head (README: "K-fold and multi-head models"). folds: the holdout's val_f1 (20% of the people)
# against the 3-fold cross-validated val_f1 of every training image: two different validation sets.
TECHNIQUES.update({"multihead": (["--classification", "multi"], ["--classification", "multihead"]),
                   "folds": (["--folds", "1"], ["--folds", "3"])})


def same_run(flags: list[str]) -> str:
    """Runs with the same parameters give the same numbers (CPU, no loader workers, one seed): each is run once."""
    return json.dumps(parse_params([*BUDGET, *flags], None).to_dict(), sort_keys=True)


def val_f1(data: Path, output: Path, flags: list[str]) -> float:
    # One thread per trial: the figures then do not depend on --jobs (a reduction's order follows the threads),
    # and on a shared machine parallel single-threaded trials waste less time waiting on each other.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(data), "--output_dir", str(output),
                    *BUDGET, *flags], check=True, capture_output=True, cwd=ROOT, env=env)
    cross_validated = list(output.rglob("kfold.json"))  # K-fold: the last epoch's OOF score, not one fold's
    if cross_validated:
        return json.loads(cross_validated[0].read_text())["epochs"][-1]["val_f1"]
    metrics = next(output.rglob("metrics.jsonl")).read_text().splitlines()
    return json.loads(metrics[-1])["val_f1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "contest_techniques.json"))
    parser.add_argument("--jobs", type=int, default=1, help="trials run at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "demo", people=24, eval_images=40, width=96, height=128, seed=3)
        runs = {}  # same_run key -> (output folder, flags): every distinct run once
        for name, (off, on) in TECHNIQUES.items():
            for side, flags in (("off", off), ("on", on)):
                runs.setdefault(same_run(flags), (Path(tmp) / f"{name}-{side}", flags))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {key: pool.submit(val_f1, data, output, flags) for key, (output, flags) in runs.items()}
            scores = {key: future.result() for key, future in futures.items()}
        rows = {}
        for name, (off, on) in TECHNIQUES.items():
            rows[name] = {"off": scores[same_run(off)], "on": scores[same_run(on)], "flags_on": " ".join(on)}
            print(f"| {name} | `{rows[name]['flags_on']}` | {rows[name]['off']:.4f} | {rows[name]['on']:.4f} |")
    write_json(rows, args.out)


if __name__ == "__main__":
    main()
