"""ASHA, asynchronous successive halving, as an NNI assessor (config.asha.yml):

    assessor:
      codeDirectory: .
      className: harness.experiment.asha.Asha
      classArgs: {optimize_mode: maximize, eta: 3, min_resource: 1, max_resource: 30, grace_period: 1}

A trial is stopped at a rung (min_resource * eta**k epochs, or the `rungs` given) when it is not in the top 1/eta of
the trials that reached that rung; no trial waits for others (the rule: harness/experiment/rungs.py). NNI 3.0 has
Hyperband and BOHB, which wait for each round to fill, and no ASHA.

What it keeps: the rungs' scores and its stops in <experiment>/checkpoint/asha.json, rewritten whole after every
change, and each stop as a line of <experiment>/log/assessor_stops.jsonl (the follower prints them, the report
shows them). `nnictl resume` starts the assessor again with NNI_MODE=resume, and its load_checkpoint reads the
record back, so later trials are judged against the earlier ones. What NNI 3.0 does not allow: the trials that were
running when the experiment stopped and are resumed are not judged again (the dispatcher drops the intermediate
results of parameter sets from before the resume, msg_dispatcher.py `is_created_in_previous_exp`)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from nni.assessor import Assessor, AssessResult

from harness.atomic import write_json, write_jsonl
from harness.errors import UserError
from harness.experiment.rungs import STATE, STOPS, Rungs, read_rungs, rung_epochs, stop_line

log = logging.getLogger("harness.asha")


def scalar(result: Any) -> float:
    """A reported result as the number it is judged by: its 'default', or itself; anything else is NaN (the
    worst), never an exception that would end NNI's dispatcher."""
    value = result.get("default") if isinstance(result, dict) else result
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


class Asha(Assessor):
    def __init__(self, optimize_mode: str = "maximize", eta: int = 3, min_resource: int = 1,
                 max_resource: int | None = None, rungs: list[int] | None = None, grace_period: int = 1) -> None:
        super().__init__()
        if optimize_mode not in ("maximize", "minimize"):
            raise UserError(f"ASHA's optimize_mode is {optimize_mode!r}, expected maximize or minimize")
        if isinstance(grace_period, bool) or not isinstance(grace_period, int) or grace_period < 1:
            raise UserError(f"ASHA's grace_period is {grace_period!r}, expected a positive number of trials")
        self.state = Rungs(eta, rung_epochs(eta, min_resource, max_resource, rungs), grace_period,
                           1.0 if optimize_mode == "maximize" else -1.0)
        log.info("ASHA rungs at %s epochs, eta %d, grace period %d trial(s)", self.state.epochs, eta, grace_period)

    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        history = [self.state.sign * scalar(result) for result in trial_history]
        verdicts = self.state.advance(str(trial_job_id), history)
        if not verdicts:
            return AssessResult.Good
        self.save()
        if verdicts[-1].continues:
            return AssessResult.Good
        log.info(stop_line(self.state.stops[-1]))
        return AssessResult.Bad

    def save(self) -> None:
        """The record where `nnictl resume` finds it, and the stops where the follower reads them. A failed write
        is logged, never raised: the dispatcher would die with it, and the experiment with it."""
        folders = {"NNI_CHECKPOINT_DIRECTORY": STATE, "NNI_LOG_DIRECTORY": STOPS}
        for variable, name in folders.items():
            folder = os.environ.get(variable)
            if not folder:
                continue
            try:
                if name == STATE:
                    write_json(self.state.to_dict(), Path(folder) / name)
                else:
                    write_jsonl(self.state.stops, Path(folder) / name)
            except (OSError, UserError) as error:
                log.warning("ASHA could not write %s in %s (%s)", name, folder, error)

    def load_checkpoint(self) -> None:
        """On `nnictl resume`: the rungs as they were, when the configuration still matches."""
        folder = os.environ.get("NNI_CHECKPOINT_DIRECTORY")
        if not folder:
            return
        try:
            saved = read_rungs(Path(folder))
        except UserError as error:
            log.warning("ASHA starts with empty rungs: %s", error)
            return
        if saved is None:
            return
        if (saved.eta, saved.epochs, saved.sign) != (self.state.eta, self.state.epochs, self.state.sign):
            log.warning("ASHA starts with empty rungs: the record in %s has eta %d and rungs %s, the config eta %d "
                        "and rungs %s", folder, saved.eta, saved.epochs, self.state.eta, self.state.epochs)
            return
        saved.grace_period = self.state.grace_period
        self.state = saved
        log.info("ASHA resumed with %d trial(s) recorded and %d stop(s)",
                 len({t for scores in saved.recorded.values() for t in scores}), len(saved.stops))

    def save_checkpoint(self) -> None:
        self.save()
