"""One NNI trial: train a classifier with the search space's choices, report every epoch, keep good epochs' soft CSVs.

Runs under `nnictl create --config config.yml`, or standalone: `python trial.py --model ecaresnet50t ...`.
The flow (README's "How a trial runs"): parameters -> data -> model -> run folder -> per epoch: train, validate,
hand the record to the sinks (metrics.jsonl, NNI, the log), dump soft CSVs when the dump rule holds -> final metric.
This file only wires the parts together; each stage lives in harness/ (data, train, outputs) and models/."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data.labels import csv_task
from harness.data.layouts import EvalSet, TrainSet, load_eval, load_train
from harness.data.loaders import Loaders, LoaderSettings, build_loaders
from harness.data.split import assign_folds, fold_indices, split_indices
from harness.data.transforms import Normalizer
from harness.errors import EndBySignal, UserError, run_cli, without_teardown
from harness.nni_runtime import next_parameters, parameter_set_id, sequence_id, trial_identity, under_nni
from harness.outputs import kfold
from harness.outputs.progress import EpochProgress
from harness.outputs.records import best_record, default_key, epoch_record, raw_scores, val_scores
from harness.outputs.resume import resumed_run
from harness.outputs.run_folder import RunFolder, run_folder_name
from harness.outputs.sinks import EpochSink, LogLine, MetricsFile, NniReport, TensorBoard, tensorboard_dir
from harness.outputs.soft_csv import csv_labels, csv_probs, should_dump
from harness.outputs.stop import Stopped, StopSignal, clear_stop, record_stop
from harness.params import FLAG_TYPES, TrialParams, parse_params
from harness.train.allocator import keep_freed_memory
from harness.train.averaging import WeightAverage, ema_enabled
from harness.train.checkpoint import LAST, Checkpointer, TrainingState
from harness.train.class_balance import class_weights, sample_weights
from harness.train.losses import create_loss
from harness.train.mixing import BatchMixer, mixing_enabled
from harness.train.optim import create_optimizer, create_scheduler
from harness.train.passes import TrainingDiverged, train_one_epoch
from harness.train.population import checked_folder, load_parent, save_member
from harness.train.precision import resolve_device, resolve_precision, seed_everything, set_cpu_threads
from harness.train.predictor import Predictor
from models import ModelError, create_model, require_known, set_fast_swish

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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    received = next_parameters()
    params = parse_params(argv, received)
    stop = StopSignal()
    stop.install()  # before anything is written: a SIGINT or SIGTERM from here on waits for the write it interrupts
    try:
        return run_trial(argv, received, params, stop)
    except Stopped as stopped:  # while loading the data or building the model: nothing was written yet
        log.info("stopped by %s before the run folder was made: nothing was written", stopped)
        raise EndBySignal(stopped.signum) from None


def run_trial(argv: list[str], received: dict[str, Any], params: TrialParams, stop: StopSignal) -> int:
    resumed = resumed_run(params.resume) if params.resume else None  # checked before anything is loaded
    if resumed:
        params = resumed[0]
    require_known(params.model)  # imports timm: only once the cheap checks passed
    seed_everything(params.seed)  # before the model: its initial weights follow the seed

    # Everything that can fail on the user's input fails before anything is written or decoded.
    task = params.classification  # the search-space key 'classification' names the task
    train_set, eval_set = load_train(params.data_dir), load_eval(params.data_dir)
    labels = train_set.head_labels(task)  # [N, heads]: one column per head of the model
    # --old_age moves the 60+ class's first age in the training labels only: validation keeps the contest's rule,
    # so validation scores (and the validation CSVs' labels) stay comparable across trials.
    train_labels = train_set.head_labels(task, params.old_age)
    heads = train_set.heads(task)  # one head, or mask, gender and age for 'multihead'
    model = create_model(params.model, heads, params.pretrained, params.weights)

    if resumed:
        _, run, experiment_id, trial_id = resumed
        pbt = (checked_folder(params.load_checkpoint_dir, run.path.parent, "load_checkpoint_dir"),
               checked_folder(params.save_checkpoint_dir, run.path.parent, "save_checkpoint_dir"))
    else:  # under NNI a trial re-run by `nnictl resume` has the same id, hence the same folder and its last.pt
        experiment_id, trial_id = trial_identity()
        experiment_folder = Path(params.output_dir) / experiment_id
        pbt = (checked_folder(params.load_checkpoint_dir, experiment_folder, "load_checkpoint_dir"),
               checked_folder(params.save_checkpoint_dir, experiment_folder, "save_checkpoint_dir"))
        run = RunFolder(params.output_dir, experiment_id,
                        run_folder_name(task, params.model, params.batch_size, params.criterion, params.lr, trial_id))
    # What the trial really ran with: NNI 3.0 can pair the wrong parameters with a trial when trials run
    # concurrently, so neither the folder name nor NNI's record is to be trusted over this file.
    if not resumed:
        run.write_params({
            **params.to_dict(), "data_dir": str(Path(params.data_dir).resolve()),
            "output_dir": str(Path(params.output_dir).resolve()), "experiment_id": experiment_id,
            "trial_id": trial_id, "parameter_id": sequence_id(), "nni_parameter_set": parameter_set_id(),
            "nni_parameters": received,
            "num_classes": train_set.num_classes(csv_task(task)), "class_names": train_set.class_names[csv_task(task)],
            "heads": heads, "validation": kfold.validation_scheme(params.folds, params.val_ratio, params.seed),
            "data_layout": train_set.layout, "argv": argv})
    log.info("run folder %s", run.path)

    try:
        if params.keep_freed_memory:
            keep_freed_memory()  # before the workers fork and the first batch: CPU steps reuse warm pages
        threads = set_cpu_threads(params.cpu_threads)
        device = resolve_device(params.device)
        precision = resolve_precision(device, params.amp, params.channels_last)
        torch.backends.cudnn.benchmark = params.cudnn_benchmark
        train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, params.val_ratio, params.seed)
        settings = LoaderSettings(
            batch_size=params.batch_size, num_workers=params.num_workers, seed=params.seed, img_size=params.img_size,
            crop=params.crop, cache=params.cache, cache_dir=params.cache_dir,
            pin_memory=params.pin_memory and device.type == "cuda")
        normalize = Normalizer(*train_set.mean_std, device=device, channels_last=precision.channels_last)

        def loaders_for(train_idx: np.ndarray, val_idx: np.ndarray) -> Loaders:
            """The loaders of one split (K-fold: of one fold); --sampler weighted draws by its training labels."""
            weights = sample_weights(train_labels[train_idx]) if params.sampler == "weighted" else None
            return build_loaders(train_set, eval_set, labels, train_idx, val_idx, settings,
                                 train_labels=train_labels, sample_weights=weights)

        def ready(model: torch.nn.Module, train_idx: np.ndarray
                  ) -> tuple[torch.nn.Module, dict[str, torch.nn.Module], Predictor]:
            """A model on the device with its criteria and predictor (K-fold makes one per fold)."""
            set_fast_swish(model, params.fast_swish)
            model = model.to(device, memory_format=precision.memory_format)
            # --class_weights: from the training split's labels (after --old_age), one vector per head.
            criteria = {name: create_loss(params.criterion, classes, class_weights(
                train_labels[train_idx, h], classes, params.class_weights)).to(device)
                for h, (name, classes) in enumerate(heads.items())}
            average = WeightAverage(model, params.ema_decay) if ema_enabled(params.ema_decay) else None
            return model, criteria, Predictor(model, heads, normalize, precision, params.tta, average)

        key = default_key(params.metric, params.folds > 1 or len(val_idx) > 0)
        steps = params.epochs * params.folds  # K-fold: one NNI step per epoch of each fold
        sinks: list[EpochSink] = [MetricsFile(run), LogLine(steps, key)]
        if under_nni():  # standalone, NNI's reports would only log what LogLine logs
            sinks.insert(1, NniReport(key, reserved=FLAG_TYPES))
        if params.tensorboard:
            sinks.append(TensorBoard(tensorboard_dir(run.path)))
        log.info("%s on %s (%s; %s, channels_last %s, %d CPU threads), heads %s, %s loss%s", params.model, device,
                 task, precision.reason, precision.channels_last, threads, heads, params.criterion,
                 f", {params.folds} folds" if params.folds > 1 else "")

        checkpointer = Checkpointer(run.path, params.checkpoint, key)
        try:
            if params.folds == 1:
                loaders = loaders_for(train_idx, val_idx)
                model, criteria, predictor = ready(model, train_idx)
                train(params, model, heads, criteria, loaders, predictor, run, sinks, checkpointer, stop, pbt)
                best = best_record(run.records, key)
            else:
                def fresh_model() -> torch.nn.Module:  # every fold starts from the same initial weights
                    seed_everything(params.seed)
                    return create_model(params.model, heads, params.pretrained, params.weights)
                best = train_folds(params, model, fresh_model, ready, loaders_for, heads, labels, train_set,
                                   eval_set, run, sinks, checkpointer, stop, key)
        except TrainingDiverged as error:
            # K-fold: no cross-validated result without every fold, so no final result is reported.
            best = best_record(run.records, key) if params.folds == 1 else None
            for sink in sinks:
                sink.close(best)
            reported = f"best epoch {best['epoch']} reported as the final result" if best else "no final result"
            raise TrainingDiverged(f"{error} in epoch {len(run.records) + 1}: the trial stopped ({reported}); "
                                   f"try a lower --lr (it was {params.lr:g})") from None
        for sink in sinks:
            sink.close(best)
        return 0
    except Stopped as stopped:
        # NNI takes no final result from a stopped trial: none is reported. The checkpoint stays for a resume.
        with stop.protect():
            if not run.records and not resumed and run.discard_if_unused():
                log.info("stopped by %s before the first epoch ended: removed %s", stopped, run.path)
            else:
                record_stop(run.path, str(stopped), run.records, LAST if params.checkpoint == "last" else None)
                log.info("stopped by %s after epoch %d", stopped, len(run.records))
        raise EndBySignal(stopped.signum) from None
    except UserError:
        # A failure on the input found while loading (a corrupt image, a full disk) leaves no half-made run folder.
        if not resumed and run.discard_if_unused():
            log.info("removed %s: the trial failed before its first epoch", run.path)
        raise


def train_folds(params: TrialParams, model: torch.nn.Module | None, fresh_model: Callable[[], torch.nn.Module],
                ready: Callable, loaders_for: Callable[[np.ndarray, np.ndarray], Loaders], heads: dict[str, int],
                labels: np.ndarray, train_set: TrainSet, eval_set: EvalSet | None, run: RunFolder,
                sinks: list[EpochSink],
                checkpointer: Checkpointer, stop: StopSignal, key: str) -> dict[str, Any] | None:
    """--folds K: the K folds one after another (harness/outputs/kfold.py describes the scheme), then the OOF
    CSVs and cross-validated records; returns the best of those (the final result)."""
    # Stratified on the 18-class label (a single-label data set's own label): the same people per fold for every task.
    fold_of = assign_folds(train_set.groups, train_set.task_labels("multi"), params.folds)
    parts = kfold.FoldParts(run.path)
    resumed = checkpointer.load_last()  # after a kill mid-K-fold: the fold and epoch to continue from
    done = resumed["epoch"] if resumed else 0
    first_fold, first_epoch = kfold.resume_point(done, params.epochs)
    if resumed:
        run.records = resumed["records"]
        clear_stop(run.path)
        run.write_metrics()
        log.info("resumed after step %d: fold %d from epoch %d", done, first_fold, first_epoch)
    for fold in range(first_fold, params.folds + 1):
        train_idx, val_idx = fold_indices(fold_of, fold - 1)
        log.info("fold %d/%d: %d training and %d held-out images", fold, params.folds, len(train_idx), len(val_idx))
        loaders = loaders_for(train_idx, val_idx)
        fold_model, criteria, predictor = ready(model if fold == first_fold else fresh_model(), train_idx)
        model = None  # only the fold in training holds a model on the device
        offset = kfold.step_number(fold, 0, params.epochs)
        train(params, fold_model, heads, criteria, loaders, predictor, run, sinks, checkpointer, stop,
              fold=kfold.FoldRun(fold, offset, val_idx, parts, resumed if done > offset else None))
        del fold_model, criteria, predictor, loaders  # freed before the next fold's are made
    with stop.protect():
        if parts.folder.is_dir():
            eval_ids = eval_set.image_ids if eval_set else []
            cv = kfold.assemble(run, parts, run.records, params.folds, params.epochs, labels, heads,
                                train_set.paths, eval_ids, eval_set is not None)
        else:  # a finished run resumed again: its folds' files are gone, kfold.json has the records
            cv = json.loads((run.path / kfold.SUMMARY).read_text())["epochs"]
        best = best_record(cv, key)
        kfold.write_summary(run.path, params.folds, fold_of, cv, best)
        parts.remove()
    log.info("cross-validated (%d folds): %s", params.folds, ", ".join(
        f"epoch {r['epoch']} {key} {r[key]:.4f}{' (dumped)' if r['dumped'] else ''}" for r in cv))
    return best


def train(params: TrialParams, model: torch.nn.Module, heads: dict[str, int], criteria: dict[str, torch.nn.Module],
          loaders: Loaders, predictor: Predictor, run: RunFolder, sinks: list[EpochSink], checkpointer: Checkpointer,
          stop: StopSignal, pbt: tuple[Path | None, Path | None] = (None, None),
          fold: kfold.FoldRun | None = None) -> None:
    optimizer = create_optimizer(params.optimizer, model.parameters(), params.lr, params.weight_decay,
                                 params.momentum, params.fused_optimizer)
    # Population Based Training: a parent's weights and optimiser state, unless this very trial is being resumed.
    identity = {"model": params.model, "heads": heads, "img_size": params.img_size}
    inherited = None if checkpointer.has_last() else load_parent(pbt[0], model, optimizer, identity, params.lr,
                                                                  params.weight_decay)
    scheduler = create_scheduler(params.scheduler, optimizer, params.epochs)
    scaler = predictor.precision.grad_scaler()
    average = predictor.average  # --ema_decay
    if inherited and average is not None:
        average.restart_from(model)  # PBT: the average starts at the inherited weights
    mix = BatchMixer(heads, params.mixup, params.cutmix, params.mix_prob) \
        if mixing_enabled(params.mixup, params.cutmix, params.mix_prob) else None
    # Checkpoints and resume: continue after the last completed epoch of last.pt, if the run folder has one.
    state = TrainingState(model, optimizer, scheduler, scaler, loaders.train, average)
    offset = fold.offset if fold else 0  # K-fold: metrics.jsonl, NNI and last.pt count steps over all folds
    if fold is None:
        first_epoch, last_dump_loss, run.records = checkpointer.resume(state)
    elif fold.resumed is not None:  # this fold was interrupted: continue it from last.pt
        first_epoch, last_dump_loss, run.records = checkpointer.restore(state, fold.resumed)
        first_epoch -= offset
    else:
        first_epoch, last_dump_loss = 1, None  # the dump rule runs per fold
    if first_epoch > 1:
        clear_stop(run.path)
        run.write_metrics()  # one line per completed epoch, whatever a kill left
        log.info("resumed after epoch %d from %s", first_epoch - 1, checkpointer.folder / LAST)
    if inherited:
        # The inherited weights scored again on this trial's validation set, before any training: the parent's
        # last score if the weights really came over (README: Population Based Training).
        inherited["start"] = val_scores(predictor(loaders.val, criteria), loaders.val_labels, heads) \
            if loaders.val else None
        run.write_population(inherited)
        log.info("PBT: starts from %s (its last val_acc %s; here before training %s)", inherited["loaded_from"],
                 inherited["parent_record"].get("val_acc"), (inherited["start"] or {}).get("val_acc"))
    for epoch in range(first_epoch, params.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        result = train_one_epoch(model, loaders.train, heads, criteria, optimizer, predictor.normalize,
                                 predictor.precision, scaler,
                                 on_batch=EpochProgress(epoch, params.epochs, len(loaders.train)), mix=mix,
                                 after_step=average.update if average is not None else None)
        val = predictor(loaders.val, criteria) if loaders.val else None
        record = epoch_record(offset + epoch, result, val, loaders.val_labels, heads, lr)
        if average is not None and loaders.val:
            record.update(raw_scores(predictor.of_model(loaders.val, criteria), loaders.val_labels, heads))
        dump = should_dump(result.accuracy, result.loss, last_dump_loss, params.dump_threshold)
        if fold is not None:  # K-fold: this step's held-out predictions wait in folds/ for the OOF CSVs
            keep = kfold.keeps_eval(fold.number, epoch, dump, kfold.fold_candidates(run.records))
            evaluation = predictor(loaders.eval) if keep and loaders.eval else None
            with stop.protect():
                fold.parts.write(fold.number, epoch, fold.val_idx, csv_probs(val.probs, heads),
                                 csv_probs(evaluation.probs, heads) if evaluation else None)
            record = kfold.fold_record(record, fold.number, epoch, dump)
            last_dump_loss = result.loss if dump else last_dump_loss
            dump = False
        elif dump:
            # The eval set is predicted only at dump epochs (nothing else reads it), by the same predictor as the
            # validation CSV beside it.
            evaluation = predictor(loaders.eval) if loaders.eval else None
            with stop.protect():
                run.write_soft_csvs(epoch, result.accuracy, result.loss,
                                    loaders.eval_ids, csv_probs(evaluation.probs, heads) if evaluation else None,
                                    loaders.val_ids, csv_labels(loaders.val_labels, heads),
                                    csv_probs(val.probs, heads) if val else None)
            last_dump_loss = result.loss
        record.update(dumped=dump, seconds=time.perf_counter() - started)
        scheduler.step()
        with stop.protect():  # the checkpoint before the sinks: a record NNI received always has its checkpoint
            checkpointer.save(state, offset + epoch, last_dump_loss, [*run.records, record])
            for sink in sinks:
                sink.epoch(record)
    with stop.protect():  # the next PBT step starts from here
        save_member(pbt[1], model, optimizer, identity, run.path, run.records[-1])


if __name__ == "__main__":
    without_teardown(lambda: run_cli(main, "trial.py", also=(ModelError,)))
