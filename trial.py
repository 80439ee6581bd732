"""One NNI trial: train a classifier with the search space's choices, report every epoch, keep good epochs' soft CSVs.

Runs under `nnictl create --config config.yml`, or standalone: `python trial.py --model ecaresnet50t ...`.
The flow (see ../shared/design.md): parameters -> run folder -> data -> model -> per epoch: train, validate, record,
report one metric to NNI, dump soft CSVs when the dump rule holds -> final metric."""
from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import nni
import torch

from harness.allocator import keep_freed_memory
from harness.datasets import load_eval, load_train
from harness.dumping import should_dump
from harness.errors import run_cli
from harness.loaders import build_loaders
from harness.losses import create_loss
from harness.optim import create_optimizer, create_scheduler
from harness.params import parse_params
from harness.reporting import best_record, default_key, epoch_record, nni_metric
from harness.run_folder import RunFolder, trial_identity
from harness.training import predict, resolve_device, resolve_precision, seed_everything, train_one_epoch
from harness.transforms import Normalizer
from models import create_model, set_fast_swish

log = logging.getLogger("trial")


def configure_logging() -> None:
    """Under NNI the root logger already writes to the trial log; standalone, our loggers get their own handler
    (the root logger is left alone: NNI logs its metric lines through it)."""
    standalone = not logging.getLogger().handlers
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("trial", "harness"):
        logging.getLogger(name).setLevel(logging.INFO)
        if standalone:
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).propagate = False


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    with warnings.catch_warnings():  # NNI warns at length when a trial runs standalone, which is a normal use here
        warnings.filterwarnings("ignore", message=".*without runtime.*")
        received = nni.get_next_parameter() or {}
    params = parse_params(argv, received)
    seed_everything(params.seed)  # before the model: its initial weights follow the seed

    # Everything that can fail on the user's input fails before anything is written or decoded.
    train_set, eval_set = load_train(params.data_dir), load_eval(params.data_dir)
    labels = train_set.task_labels(params.classification)
    num_classes = train_set.num_classes(params.classification)
    model = create_model(params.model, num_classes, params.pretrained, params.weights)

    experiment_id, trial_id = trial_identity()
    run = RunFolder(params.output_dir, experiment_id, trial_id, params)
    # What the trial really ran with: NNI 3.0 can pair the wrong parameters with a trial when trials run
    # concurrently, so neither the folder name nor NNI's record is to be trusted over this file.
    run.write_params({
        **params.to_dict(), "data_dir": str(Path(params.data_dir).resolve()),
        "output_dir": str(Path(params.output_dir).resolve()), "experiment_id": experiment_id,
        "trial_id": trial_id, "parameter_id": nni.get_sequence_id(), "nni_parameters": received,
        "num_classes": num_classes, "class_names": train_set.class_names[params.classification],
        "data_layout": train_set.layout, "argv": sys.argv})
    log.info("run folder %s", run.path)

    keep_freed_memory()  # before the workers fork and the first batch: CPU steps reuse warm pages
    device = resolve_device(params.device)
    precision = resolve_precision(device, params.amp, params.channels_last)
    torch.backends.cudnn.benchmark = params.cudnn_benchmark
    loaders = build_loaders(params, train_set, eval_set, labels,
                            pin_memory=params.pin_memory and device.type == "cuda")
    normalize = Normalizer(*train_set.mean_std, device=device, channels_last=precision.channels_last)

    set_fast_swish(model, params.fast_swish)
    model = model.to(device, memory_format=torch.channels_last if precision.channels_last else torch.preserve_format)
    criterion = create_loss(params.criterion, num_classes).to(device)
    optimizer = create_optimizer(params.optimizer, model.parameters(), params.lr, params.weight_decay,
                                 params.momentum)
    scheduler = create_scheduler(params.scheduler, optimizer, params.epochs)
    scaler = precision.grad_scaler()
    key = default_key(params.metric, loaders.val is not None)
    log.info("%s on %s (%s, amp %s, channels_last %s), %d classes, %s loss", params.model, device,
             params.classification, precision.amp_dtype, precision.channels_last, num_classes, params.criterion)

    last_dump_loss = None
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(model, loaders.train, criterion, optimizer, normalize, precision, scaler)
        val = predict(model, loaders.val, normalize, precision, criterion) if loaders.val else None
        record = epoch_record(epoch, train, val, loaders.val_labels, num_classes, lr)
        dump = should_dump(train.accuracy, train.loss, last_dump_loss, params.dump_threshold)
        if dump:
            # The eval set is predicted only at dump epochs: nothing else reads it.
            evaluation = predict(model, loaders.eval, normalize, precision) if loaders.eval else None
            run.write_soft_csvs(epoch, train.accuracy, train.loss,
                                loaders.eval_ids, evaluation.probs if evaluation else None,
                                loaders.val_ids, loaders.val_labels, val.probs if val else None)
            last_dump_loss = train.loss
        record.update(dumped=dump, seconds=time.perf_counter() - started)
        run.add_metrics(record)
        nni.report_intermediate_result(nni_metric(record, key))
        log.info("epoch %d/%d: %s", epoch, params.epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float)) +
                 (", soft CSVs written" if dump else ""))
        scheduler.step()

    best = best_record(run.records, key)
    nni.report_final_result(nni_metric(best, key))
    log.info("best epoch %d: %s %.4f", best["epoch"], key, best[key])
    return 0


if __name__ == "__main__":
    run_cli(main, "trial.py")
