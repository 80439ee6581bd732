"""Predict again from a run folder's checkpoint: a new soft-CSV pair (validation and eval) by the same Predictor a
trial dumps with, named so that the ensemble reads it like the trial's own.

    python -m harness.predict RUN_DIR [--data_dir DIR] [--tta none|hflip] [--device auto] [--num_workers N]

(or `python predict.py RUN_DIR ...`). Top-level wiring like trial.py (harness/ never imports models/; harness/predict.py
only runs this file): the run's params.json says what to rebuild; the
weights come from best.pt, else last.pt. --data_dir predicts another eval set (its train/ gives the validation
split, by the run's seed and ratio). The pair is written as submission{epoch}_{acc}_{loss}-pred{n}_soft.csv and its
valid partner, n the first number not yet used: nothing already in the folder is overwritten."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.data.labels import csv_task
from harness.data.layouts import load_eval, load_train
from harness.data.loaders import LoaderSettings, build_loaders
from harness.data.split import split_indices
from harness.data.transforms import Normalizer
from harness.errors import UserError, run_cli, without_teardown
from harness.outputs.resume import read_params_json, recorded_params
from harness.outputs.run_folder import RunFolder
from harness.outputs.soft_csv import csv_labels, csv_probs
from harness.train.checkpoint import weights_for_prediction
from harness.train.precision import resolve_device, resolve_precision, seed_everything
from harness.train.predictor import Predictor
from harness.train.tta import TTA
from models import ModelError, create_model

log = logging.getLogger("trial")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a trial's run folder holding params.json and best.pt or last.pt")
    parser.add_argument("--data_dir", default="", help="data set to predict (default: the run's own)")
    parser.add_argument("--tta", default="none", choices=tuple(TTA),
                        help="test-time augmentation (harness/train/tta.py)")
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
    folder = Path(args.run_dir)
    recorded = read_params_json(folder)
    if recorded.get("folds", 1) > 1:
        raise UserError(f"{folder} is a {recorded['folds']}-fold run: its soft CSVs come from {recorded['folds']} "
                        f"models, whose weights are not kept; re-run the trial to predict again")
    params = recorded_params(recorded, **({"data_dir": args.data_dir} if args.data_dir else {}))
    state, epoch = weights_for_prediction(folder)
    records = {r["epoch"]: r for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())}
    if epoch not in records:
        raise UserError(f"{folder / 'metrics.jsonl'} has no line for epoch {epoch}, the checkpoint's")
    seed_everything(params.seed)
    task = params.classification
    train_set, eval_set = load_train(params.data_dir), load_eval(params.data_dir)
    classes = train_set.num_classes(csv_task(task))
    if classes != recorded.get("num_classes", classes):
        raise UserError(f"{params.data_dir} has {classes} classes for {task}, the run {recorded['num_classes']}")
    labels = train_set.head_labels(task)
    heads = train_set.heads(task)
    model = create_model(params.model, heads, False, "")
    model.load_state_dict(state)
    device = resolve_device(args.device)
    precision = resolve_precision(device, params.amp, params.channels_last)
    train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, params.val_ratio, params.seed)
    loaders = build_loaders(train_set, eval_set, labels, train_idx, val_idx, LoaderSettings(
        batch_size=params.batch_size, num_workers=args.num_workers, seed=params.seed, img_size=params.img_size,
        crop=params.crop, cache=params.cache, cache_dir=params.cache_dir, pin_memory=device.type == "cuda"))
    model = model.to(device, memory_format=precision.memory_format)
    predictor = Predictor(model, heads, Normalizer(*train_set.mean_std, device=device,
                                                   channels_last=precision.channels_last), precision, args.tta)
    val = predictor(loaders.val) if loaders.val else None
    evaluation = predictor(loaders.eval) if loaders.eval else None
    record = records[epoch]
    run = RunFolder(folder.parent.parent, folder.parent.name, folder.name)
    written = run.write_soft_csvs(epoch, record["train_acc"], record["train_loss"],
                                  loaders.eval_ids, csv_probs(evaluation.probs, heads) if evaluation else None,
                                  loaders.val_ids, csv_labels(loaders.val_labels, heads),
                                  csv_probs(val.probs, heads) if val else None,
                                  tag=free_tag(folder))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    without_teardown(lambda: run_cli(main, "harness.predict", also=(ModelError,)))
