"""One NNI trial: train a classifier with the search space's choices, report every epoch, keep good epochs' soft CSVs.

Runs under `nnictl create --config config.yml`, or standalone: `python trial.py --model ecaresnet50t ...`.
The flow (docs/trial.md, "How a trial runs"): parameters -> data -> run folder -> validation scheme -> hooks -> the
epoch loop over the scheme's splits (train, validate, the hooks in order: dump rule, weight average, the scheme's
writer, PBT, checkpoint, sinks; the final model's cost) -> final result. This file only wires the parts; each
lives in harness/ and models/."""
from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from harness.cli import EndBySignal, configure_logging, run_cli, without_teardown
from harness.errors import UserError
from harness.experiment.runtime import Handout, ManagerWatch, next_parameters, trial_identity, under_nni
from harness.experiment.stops import assessor_stop_of_this_trial
from harness.fit.dump_rule import DumpRule
from harness.fit.hooks import Hook
from harness.fit.loop import EpochLoop
from harness.fit.resume import check_same_data, resumed_run
from harness.fit.setup import FitSetup, TrialData, load_data, prepare_machine
from harness.outputs.mlflow_sink import MlflowSink
from harness.outputs.records import default_key
from harness.outputs.run_folder import RunFolder, run_folder_name
from harness.outputs.sinks import EpochSink, LogLine, MetricsFile, NniReport, Sinks, TensorBoard, tensorboard_dir
from harness.params import FLAG_TYPES, TrialParams, parse_params
from harness.signals import Stopped, StopSignal
from harness.train.averaging import AverageHook, ema_enabled
from harness.train.checkpoint import LAST, Checkpoint
from harness.train.cost import CostHook
from harness.train.population import Population, checked_folder
from harness.validation import scheme_for
from harness.validation.refit import refit_folder, refit_params
from models import ModelError, create_model, require_known

log = logging.getLogger("trial")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    handout = next_parameters()
    params = parse_params(argv, handout.parameters)
    stop = StopSignal()
    stop.install()  # before anything is written: a SIGINT or SIGTERM from here on waits for the write it interrupts
    try:
        return run_trial(argv, handout, params, stop)
    except Stopped as stopped:  # while loading the data: nothing was written yet
        log.info("stopped by %s before training started: nothing was written", stopped)
        raise EndBySignal(stopped.signum) from None


def new_run(params: TrialParams) -> tuple[RunFolder, str, str]:
    """Under NNI a trial re-run by `nnictl resume` has the same id, hence the same folder and its last.pt; a refit
    goes beside the run it refits."""
    if params.refit:
        return refit_folder(params)
    experiment_id, trial_id = trial_identity()
    name = run_folder_name(params.classification, params.model, params.batch_size, params.criterion, params.lr,
                           trial_id)
    return RunFolder(params.output_dir, experiment_id, name), experiment_id, trial_id


def description(params: TrialParams, data: TrialData, scheme: Any, ids: tuple[str, str], handout: Handout,
                argv: list[str]) -> dict[str, Any]:
    """params.json: what the trial really ran with, the ids, NNI's handout (which set it trained, and why) and the
    data it read."""
    return {**params.to_dict(), "data_dir": str(Path(params.data_dir).resolve()),
            "output_dir": str(Path(params.output_dir).resolve()), "experiment_id": ids[0], "trial_id": ids[1],
            **handout.record(), **data.describe(), "validation": scheme.describe(), "argv": argv}


def sinks(params: TrialParams, run: RunFolder, loop: EpochLoop, steps: int) -> list[EpochSink]:
    found: list[EpochSink] = [MetricsFile(run, loop.records), LogLine(steps, loop.key)]
    if under_nni():  # standalone, NNI's reports would only log what LogLine logs
        found.insert(1, NniReport(loop.key, reserved=FLAG_TYPES))
    if params.tensorboard:
        found.append(TensorBoard(tensorboard_dir(run.path)))
    if params.mlflow_uri:  # MlflowSink imports mlflow (optional) only when it is made
        found.append(MlflowSink(params.mlflow_uri, run.path))
    if under_nni():  # last: the epoch is on record everywhere before a trial whose manager died stops
        found.append(ManagerWatch(loop.stop))
    return found


def hooks(params: TrialParams, data: TrialData, run: RunFolder, scheme: Any, loop: EpochLoop) -> list[Hook]:
    """This run's techniques; harness/fit/hooks.py's ORDER says in which order they act, and why."""
    experiment = run.path.parent  # PBT's folders arrive through NNI's REST API: they must stay under it
    pbt = Population(run, checked_folder(params.load_checkpoint_dir, experiment, "load_checkpoint_dir"),
                     checked_folder(params.save_checkpoint_dir, experiment, "save_checkpoint_dir"),
                     {"model": params.model, "heads": data.heads, "img_size": params.img_size}, params.lr,
                     params.weight_decay)
    found = [DumpRule(params.dump_rule, params.dump_threshold), scheme.writer(), pbt,
             Checkpoint(run, params.checkpoint, loop.key), Sinks(sinks(params, run, loop, scheme.steps)),
             CostHook(run, last_split=params.folds)]
    return found + ([AverageHook()] if ema_enabled(params.ema_decay) else [])


def run_trial(argv: list[str], handout: Handout, params: TrialParams, stop: StopSignal) -> int:
    resumed = resumed_run(params.resume) if params.resume else None  # checked before anything is loaded
    params = resumed[0] if resumed else refit_params(params.refit) if params.refit else params
    require_known(params.model)  # imports timm: only once the cheap checks passed
    params, data = load_data(params)  # what can fail on the user's data fails before anything is written
    run, loop = None, None
    try:
        with stop.protect():  # made and claimed as one: a stop between the two would leave an empty folder of no one
            run, *ids = resumed[1:] if resumed else new_run(params)
            run.claim()  # one writer per run folder: a second one waits a little, then refuses
        check_same_data(run.path, data.fingerprint)  # a run continued from last.pt needs the data it started with
        scheme = scheme_for(params, data, run)
        if not resumed:
            run.write_params(description(params, data, scheme, tuple(ids), handout, argv))
        log.info("run folder %s", run.path)
        machine = prepare_machine(params)
        model = partial(create_model, params.model, data.heads, params.pretrained, params.weights, params.fast_swish)
        loop = EpochLoop(FitSetup(params, data, machine, model), scheme, stop,
                         default_key(params.metric, scheme.has_validation))
        loop.attach(hooks(params, data, run, scheme, loop))
        log.info("%s on %s (%s; %s, channels_last %s, %d CPU threads), heads %s, %s loss%s", params.model,
                 machine.device, data.task, machine.precision.reason, machine.precision.channels_last,
                 machine.threads, data.heads, params.criterion, f", {params.folds} folds" if params.folds > 1 else "")
        loop.run()
        return 0
    except Stopped as stopped:
        # NNI takes no final result from a stopped trial: none is reported. The checkpoint stays for a resume.
        records = loop.records if loop else []
        with stop.protect():
            if run is None or not run.claimed:  # the folder is another process's: nothing of this one is in it
                log.info("stopped by %s before training started: nothing was written", stopped)
            elif not records and not resumed and run.discard_if_unused():
                log.info("stopped by %s before the first epoch ended: removed %s", stopped, run.path)
            else:
                assessor = assessor_stop_of_this_trial() if under_nni() else None
                run.record_stop(str(stopped), records, LAST if params.checkpoint == "last" else None, assessor)
                log.info("stopped by %s%s after epoch %d", stopped, " (the assessor's stop)" if assessor else "",
                         len(records))
        raise EndBySignal(stopped.signum) from None
    except (UserError, ModelError):
        # A failure found while loading (a corrupt image, weights that cannot be had, a full disk) leaves no
        # half-made run folder.
        if run and not resumed and not (loop and loop.records) and run.discard_if_unused():
            log.info("removed %s: the trial failed before its first epoch", run.path)
        raise
    finally:
        if run:
            run.release()


if __name__ == "__main__":
    without_teardown(lambda: run_cli(main, "trial.py", also=(ModelError,)))
