"""Predict again from a run folder's checkpoint: a new soft-CSV pair (validation and eval) by the same Predictor a
trial dumps with, named so that the ensemble reads it like the trial's own.

    python predict.py RUN_DIR [--data_dir DIR] [--tta POLICY] [--tta_merge mean|gmean] [--device auto]
                      [--num_workers N]

Top-level wiring like trial.py (harness/ never imports models/): the run's params.json says what to rebuild; the
weights come from best.pt, else last.pt. --data_dir predicts another eval set (its train/ gives the validation
split, by the run's seed and ratio). The pair is written as submission{epoch}_{acc}_{loss}-pred{n}_soft.csv and its
valid partner, n the first number not yet used: nothing already in the folder is overwritten. It holds the folder's
lock as a trial does: it waits 10 s for a trial still writing the folder (or another predict.py of it), then refuses."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli import run_cli, without_teardown
from harness.errors import UserError, one_line
from harness.fit.resume import recorded_params
from harness.fit.setup import FitSetup, load_data, prepare_machine
from harness.outputs.reading import METRICS, PARAMS, read_metrics, read_params, record_of
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import SoftTable, csv_labels, csv_probs
from harness.params import MAX_WORKERS
from harness.train.checkpoint import weights_for_prediction
from harness.train.precision import seed_everything
from harness.train.tta import MERGES, TTA
from harness.validation.holdout import holdout_split
from models import ModelError, create_model

log = logging.getLogger("trial")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python predict.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a trial's run folder holding params.json and best.pt or last.pt")
    parser.add_argument("--data_dir", default="", help="data set to predict (default: the run's own)")
    parser.add_argument("--tta", default="none", choices=tuple(TTA),
                        help="test-time augmentation (harness/train/tta.py)")
    parser.add_argument("--tta_merge", default="mean", choices=tuple(MERGES),
                        help="how the views' predictions are merged: mean of probabilities or gmean (geometric)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    return parser


def free_tag(run: Path) -> str:
    taken = {p.name for p in run.glob("*-pred*_soft.csv")}
    n = 1
    while any(f"-pred{n}_soft.csv" in name for name in taken):
        n += 1
    return f"-pred{n}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.num_workers <= MAX_WORKERS:
        raise UserError(f"--num_workers must be in 0..{MAX_WORKERS}, got {args.num_workers}")
    folder = Path(args.run_dir)
    recorded = read_params(folder / PARAMS)
    # One writer per run folder: not beside its trial still training (whose lock it is), nor beside another
    # predict.py of it, which would pick the same free -pred number. Held until the pair is written.
    run = RunFolder.at(folder)
    run.claim(others="its trial still training, or another predict.py of it")
    try:
        return predict_into(run, recorded, args)
    finally:
        run.release()


def predict_into(run: RunFolder, recorded: dict[str, Any], args: argparse.Namespace) -> int:
    """Rebuilds the run's model from `recorded` (its params.json) and writes the new pair into the claimed `run`."""
    folder = run.path
    if recorded.get("folds", 1) != 1:
        raise UserError(f"{folder} is a {recorded['folds']}-fold run: its soft CSVs come from {recorded['folds']} "
                        f"models, whose weights are not kept; re-run the trial to predict again")
    params = recorded_params(recorded, folder, device=args.device, tta=args.tta, tta_merge=args.tta_merge,
                             **({"data_dir": args.data_dir} if args.data_dir else {}))
    state, epoch = weights_for_prediction(folder)
    record = record_of(read_metrics(folder / METRICS), epoch)
    if record is None:
        raise UserError(f"{folder / METRICS} has no line for epoch {epoch}, the checkpoint's")
    seed_everything(params.seed)
    params, data = load_data(params)
    if data.num_classes != recorded.get("num_classes", data.num_classes):
        raise UserError(f"{params.data_dir} has {data.num_classes} classes for {data.task}, the run "
                        f"{recorded['num_classes']}")
    setup = FitSetup(params, data, prepare_machine(params))
    model = create_model(params.model, data.heads, False, "")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"{folder}'s checkpoint does not fit {params.model} with heads {data.heads} "
                        f"({one_line(error)})") from None
    loaders = setup.loaders(*holdout_split(params, data), num_workers=args.num_workers)
    predictor = setup.predictor(setup.on_device(model))
    val = predictor(loaders.val) if loaders.val else None
    evaluation = predictor(loaders.eval) if loaders.eval else None
    heads = data.heads
    written = run.write_soft_csvs(
        epoch, record["train_acc"], record["train_loss"],
        SoftTable(loaders.val_ids, csv_probs(val.probs, heads), csv_labels(loaders.val_labels, heads)) if val else None,
        SoftTable(loaders.eval_ids, csv_probs(evaluation.probs, heads)) if evaluation else None, tag=free_tag(folder))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    without_teardown(lambda: run_cli(main, "python predict.py", also=(ModelError,)))
