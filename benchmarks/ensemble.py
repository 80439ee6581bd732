"""Time python -m ensemble on contest-sized inputs: 50 soft CSVs of 12,600 eval rows (and 3,780 validation rows:
2,700 people x 20% x 7 photos), written as trial.py writes them. Prints a markdown table.

    python -m benchmarks.ensemble [--repeats 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.cli import main
from ensemble.tasks import labels_for_task
from tests.ensemble_helpers import make_run, noisy_probs

EVAL_ROWS, VALID_ROWS, MEMBERS = 12_600, 3_780, 50
CLASSES = {"mask": 3, "gender": 2, "age": 3, "multi": 18}


def build(root: Path, tasks: dict[str, int], seed: int = 0) -> Path:
    """An experiment of `tasks[task]` runs per task, one epoch each, every run with its validation pair."""
    rng = np.random.default_rng(seed)
    eval_ids = [f"{i:040x}.jpg" for i in range(EVAL_ROWS)]  # the contest's IDs are 40-hex-digit names
    valid_ids = [f"{i // 7:06d}_female_Asian_30/mask{i % 7 + 1}.jpg" for i in range(VALID_ROWS)]
    multi_labels = rng.integers(0, 18, VALID_ROWS)
    for task, runs in tasks.items():
        labels, k = labels_for_task(multi_labels, "multi", task), CLASSES[task]
        for trial in range(runs):
            make_run(root, task, "resnet18", f"t{task}{trial}", {
                1: (eval_ids, noisy_probs(rng, rng.integers(0, k, EVAL_ROWS), k, 2.0), valid_ids,
                    noisy_probs(rng, labels, k, rng.uniform(0.5, 3.0)), labels)})
    return root


def timed(argv: list[str], repeats: int) -> float:
    """Median wall time of the whole command, CSV reading and output writing included."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print(f"writing {2 * MEMBERS} soft CSVs x 2 experiments ...", file=sys.stderr)
        multi = build(tmp_path / "multi", {"multi": MEMBERS})
        contest = build(tmp_path / "contest", {"mask": 14, "gender": 12, "age": 12, "multi": 12}, seed=1)
        out = str(tmp_path / "out" / "sub.csv")
        cases = [
            ("blend 50 multi CSVs (18 classes)", ["--multi", f"{multi}/*/submission*_soft.csv", "-o", out], 50),
            ("blend 50 mask-contest CSVs (`--from`, 3 tasks + multi marginals)",
             ["--from", str(contest), "-o", out], 50),
            ("blend 50 multi CSVs, `--mean geometric`",
             ["--multi", f"{multi}/*/submission*_soft.csv", "--mean", "geometric", "-o", out], 50),
            ("`--select` on 50 multi members (25 rounds)", ["--from", str(multi), "--select", "-o", out], 100),
            ("`--select` on 50 mask-contest members (25 rounds, 3 tasks)",
             ["--from", str(contest), "--select", "-o", out], 100),
            ("`--select --blend best` on 50 multi members (3 blends, each fitted 6 times)",
             ["--from", str(multi), "--select", "--blend", "best", "-o", out], 100),
        ]
        print(f"| case | CSVs read | seconds (median of {repeats}) |")
        print("|---|---:|---:|")
        for name, argv, files in cases:
            print(f"| {name} | {files} | {timed(argv, repeats):.2f} |", flush=True)
        print(f"\n{EVAL_ROWS:,} eval rows per CSV, {VALID_ROWS:,} validation rows; wall time of the whole command "
              f"(reading, checking, blending, writing) on {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}, "
              f"pandas {pd.__version__}, numpy {np.__version__}.")


if __name__ == "__main__":
    main_bench()
