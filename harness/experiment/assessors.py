"""NNI's assessors, made to say whom they stopped: before an assessor answers Bad, the trial's stop goes into
<experiment>/log/assessor_stops.jsonl (harness/experiment/stops.py), which the stopped trial (its stopped.json),
the follower and the report read. NNI 3.0's local service itself shows such a trial as USER_CANCELED.

Loaded by NNI as a custom assessor (config.yml):
    assessor: {codeDirectory: ., className: harness.experiment.assessors.Medianstop, classArgs: {...}}

Another assessor records its stops the same way by putting RecordedStops first among its bases:
    class Curvefitting(RecordedStops, CurvefittingAssessor): ...
and may name its reason by overriding stop_reason (and add fields of its own to the record with stop_details).

ASHA, asynchronous successive halving (config.asha.yml; NNI 3.0 has Hyperband and BOHB, which wait for each round
to fill, and no ASHA):
    assessor: {codeDirectory: ., className: harness.experiment.assessors.Asha,
               classArgs: {optimize_mode: maximize, eta: 3, min_resource: 1, max_resource: 30, grace_period: 1}}
A trial is stopped at a rung (min_resource * eta**k epochs, or the `rungs` given) when it is not in the top 1/eta of
the trials that reached that rung; no trial waits for others (the rule: harness/experiment/rungs.py). Its rungs'
scores and stops are kept in <experiment>/checkpoint/asha.json, rewritten whole after every change. `nnictl resume`
starts the assessor again with NNI_MODE=resume, and its load_checkpoint reads the record back, so later trials are
judged against the earlier ones. What NNI 3.0 does not allow: the trials that were running when the experiment
stopped and are resumed are not judged again (the dispatcher drops the intermediate results of parameter sets from
before the resume, msg_dispatcher.py `is_created_in_previous_exp`)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from nni.algorithms.hpo.medianstop_assessor import MedianstopAssessor
from nni.assessor import Assessor, AssessResult

from harness.atomic import write_json
from harness.errors import UserError
from harness.experiment.rungs import STATE, Rungs, read_rungs, rung_epochs, stop_reason
from harness.experiment.stops import record_stop, stops_file

log = logging.getLogger(__name__)


class RecordedStops:
    """A mixin for an nni.assessor.Assessor: each trial it stops is recorded before NNI is told to stop it."""

    def assess_trial(self, trial_job_id: str, trial_history: list) -> Any:
        result = super().assess_trial(trial_job_id, trial_history)  # type: ignore[misc]
        if result is AssessResult.Bad or result is False:  # NNI takes a bool too (msg_dispatcher.py)
            self.record(trial_job_id, len(trial_history), self.stop_reason(trial_job_id, trial_history),
                        self.stop_details(trial_job_id, trial_history))
        return result

    def stop_reason(self, trial_job_id: str, trial_history: list) -> str:
        return f"{type(self).__name__} judged it at step {len(trial_history)}"

    def stop_details(self, trial_job_id: str, trial_history: list) -> dict[str, Any]:
        """Fields of the assessor's own in the stop's record (beside trial, step and reason)."""
        return {}

    def record(self, trial_job_id: str, step: int, reason: str, details: dict[str, Any] | None = None) -> None:
        # The dispatcher's environment names the experiment's log folder (nnimanager.js: NNI_LOG_DIRECTORY).
        path = stops_file(os.environ.get("NNI_LOG_DIRECTORY"))
        if path is None:
            log.warning("NNI_LOG_DIRECTORY is not set: the stop of trial %s is not recorded", trial_job_id)
            return
        try:
            record_stop(path, trial_job_id, step, reason, details)
        except Exception as error:  # a full disk must not kill the dispatcher: the stop itself still happens
            log.error("the stop of trial %s could not be recorded in %s: %s", trial_job_id, path, error)


class Medianstop(RecordedStops, MedianstopAssessor):
    """NNI's Medianstop (config.yml's assessor), its stops recorded."""

    def stop_reason(self, trial_job_id: str, trial_history: list) -> str:
        step = len(trial_history)
        averages = sorted(history[step - 1] for history in self._completed_avg_history.values()
                          if len(history) >= step)
        best = (max if self._high_better else min)(self._running_history.get(trial_job_id) or [float("nan")])
        if not averages:
            return f"Medianstop at step {step}"
        # NNI's own choice of median (medianstop_assessor.py): the lower one when maximising, the upper otherwise.
        median = averages[(len(averages) - 1) // 2] if self._high_better else averages[len(averages) // 2]
        return (f"Medianstop at step {step}: best {best:.4g} {'below' if self._high_better else 'above'} the "
                f"median {median:.4g} of {len(averages)} finished trials' running averages")


def scalar(result: Any) -> float:
    """A reported result as the number it is judged by: its 'default', or itself; anything else is NaN (the
    worst), never an exception that would end NNI's dispatcher."""
    value = result.get("default") if isinstance(result, dict) else result
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


class AshaRule(Assessor):
    """ASHA's decisions and its record (asha.json); Asha below adds the recorded stops."""

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
        log.info("stopped trial %s: %s", trial_job_id, stop_reason(self.state.stops[-1]))
        return AssessResult.Bad

    def save(self) -> None:
        """The record where `nnictl resume` finds it. A failed write is logged, never raised: the dispatcher would
        die with it, and the experiment with it."""
        folder = os.environ.get("NNI_CHECKPOINT_DIRECTORY")
        if not folder:
            return
        try:
            write_json(self.state.to_dict(), Path(folder) / STATE)
        except (OSError, UserError) as error:
            log.warning("ASHA could not write %s in %s (%s)", STATE, folder, error)

    def load_checkpoint(self) -> None:
        """On `nnictl resume`: the rungs as they were, when the configuration still matches."""
        folder = os.environ.get("NNI_CHECKPOINT_DIRECTORY")
        try:
            saved = read_rungs(Path(folder)) if folder else None
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


class Asha(RecordedStops, AshaRule):
    """ASHA (config.asha.yml's assessor), its stops recorded with their rung and place."""

    def stop_reason(self, trial_job_id: str, trial_history: list) -> str:
        return stop_reason(self.state.stops[-1])

    def stop_details(self, trial_job_id: str, trial_history: list) -> dict[str, Any]:
        return {key: value for key, value in self.state.stops[-1].items() if key not in ("trial", "step")}
