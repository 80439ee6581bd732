"""Self-distillation in one command: from a K-fold experiment to its distilled K-fold run.

    python distill.py EXP_DIR [--soft_weight 0.3] [--run RUN_DIR] [--rounds 25] [-- more trial.py flags]

1. The K-fold runs under EXP_DIR that share the chosen run's task and folds are blended on their out-of-fold
   (OOF) CSVs, by the ensemble's greedy selection (python -m ensemble --select) on those CSVs, into one soft-target
   CSV: EXP_DIR/distill/oof_<task>_soft.csv. The chosen run is --run, else the one with the best cross-validated
   score.
2. trial.py trains the chosen run's configuration again, K-fold, with every training image's target blended
   (1 - W) : W between its label and that CSV (`--soft_targets`, `--soft_weight`; Plant Pathology 2020's 1st
   place used 3:7), into EXP_DIR/standalone/<run>/, where `python -m ensemble --from EXP_DIR` finds it.

Its OOF scores are not independent of its targets (each OOF prediction came from a model that trained on the other
folds, this fold's held-out images among them): judge a distilled run on a held-out set (docs/techniques.md)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from ensemble.blending import blend
from ensemble.members import Member
from ensemble.selection import select_ensemble
from harness.atomic import write_csv
from harness.cli import run_cli
from harness.errors import UserError
from harness.fit.resume import recorded_params
from harness.outputs.reading import Run, find_runs, json_object, read_run
from harness.outputs.soft_csv import read_soft_csv, soft_frame
from harness.params import FLAG_TYPES, TrialParams

ROOT = Path(__file__).resolve().parent
PROG = "python distill.py"


def kfold_runs(experiment: Path) -> list[Run]:
    runs = [read_run(folder) for folder in find_runs(experiment, "given as EXP_DIR")]
    found = [run for run in runs if run.params.get("folds", 1) > 1 and not run.params.get("soft_targets")
             and (run.folder / "kfold.json").is_file()]
    if not found:
        raise UserError(f"{experiment}: no finished K-fold run (--folds K, with its kfold.json) to distill from")
    return found


def cv_score(run: Run) -> float:
    summary = json_object(run.folder / "kfold.json", "kfold.json")
    key = str(run.params.get("metric", "val_acc"))
    scores = [r.get(key) for r in summary.get("epochs", []) if isinstance(r, dict)]
    return max((s for s in scores if isinstance(s, (int, float))), default=float("-inf"))


def oof_csvs(runs: list[Run], chosen: Run) -> list[Member]:
    """The dumped OOF CSVs of the runs with the chosen run's task and folds."""
    same = [run for run in runs if run.csv_task == chosen.csv_task
            and run.params.get("folds") == chosen.params.get("folds")]
    members = [Member(run.folder / dump.valid_csv, run.csv_task) for run in same for dump in run.dumps
               if not dump.tag and dump.valid_csv]
    if not members:
        raise UserError(f"{chosen.folder}: its K-fold runs dumped no out-of-fold CSV (lower --dump_threshold)")
    return members


def blended_oof(members: list[Member], rounds: int, target: Path) -> Path:
    """The OOF CSVs blended with the weights greedy selection gives them on their own labels; written to target."""
    tables = [read_soft_csv(member.path, labelled=True) for member in members]
    order = tables[0].ids
    if any(not table.ids.sort_values().equals(order.sort_values()) for table in tables):
        raise UserError("the K-fold runs' OOF CSVs cover different images: they must share the data set and folds")
    aligned = [table.probs[table.ids.get_indexer(order)] for table in tables]
    labels = tables[0].labels
    selection = select_ensemble(aligned, labels, rounds, "macro_f1")
    kept = np.flatnonzero(selection.counts)
    print(f"OOF blend of {len(kept)} of {len(members)} CSVs (macro-F1 {selection.score:.4f} on the OOF labels): "
          + ", ".join(f"{members[i].name} x{selection.counts[i]}" for i in kept))
    probs = blend([aligned[i] for i in kept], selection.counts[kept].astype(float).tolist())
    write_csv(soft_frame(list(order), probs, labels), target)
    return target


def trial_flags(params: TrialParams) -> list[str]:
    """The run's parameters as trial.py flags (paths and the device included: this is the user's own command)."""
    flags = []
    for f in fields(TrialParams):
        value = getattr(params, f.name)
        if f.name in ("resume", "refit") or value == "":
            continue
        flags += [f"--{f.name}", str(value).lower() if FLAG_TYPES[f.name] is bool else str(value)]
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, metavar="EXP_DIR", help="an experiment folder with K-fold runs")
    parser.add_argument("--run", type=Path, help="the K-fold run whose configuration is distilled (default: the "
                                                 "best cross-validated one)")
    parser.add_argument("--soft_weight", type=float, default=0.3, help="W of the blend (default 0.3)")
    parser.add_argument("--rounds", type=int, default=25, help="selection rounds of the OOF blend (1..1000)")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: more trial.py flags
    args, trial_args = parser.parse_args(argv[:cut]), argv[cut + 1:]
    if not 0 < args.soft_weight <= 1 or not 1 <= args.rounds <= 1000:
        raise UserError(f"--soft_weight must be in (0, 1] and --rounds in 1..1000, got {args.soft_weight}, "
                        f"{args.rounds}")
    runs = kfold_runs(args.experiment)
    chosen = read_run(args.run) if args.run else max(runs, key=cv_score)
    target = args.experiment / "distill" / f"oof_{chosen.csv_task}_soft.csv"
    soft = blended_oof(oof_csvs(runs, chosen), args.rounds, target)
    params = recorded_params(chosen.params, chosen.folder, soft_targets=str(soft.resolve()),
                             soft_weight=args.soft_weight, output_dir=str(args.experiment.resolve()))
    command = [sys.executable, str(ROOT / "trial.py"), *trial_flags(params),
               *trial_args]
    print("distilling:", " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    run_cli(main, PROG)

