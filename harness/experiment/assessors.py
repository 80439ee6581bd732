"""NNI's assessors, made to say whom they stopped: before an assessor answers Bad, the trial's stop goes into
<experiment>/log/assessor_stops.jsonl (harness/experiment/stops.py), which the stopped trial (its stopped.json),
the follower and the report read. NNI 3.0's local service itself shows such a trial as USER_CANCELED.

Loaded by NNI as a custom assessor (config.yml):
    assessor: {codeDirectory: ., className: harness.experiment.assessors.Medianstop, classArgs: {...}}

Another assessor records its stops the same way by putting RecordedStops first among its bases:
    class Curvefitting(RecordedStops, CurvefittingAssessor): ...
and may name its reason by overriding stop_reason."""
from __future__ import annotations

import logging
import os
from typing import Any

from nni.algorithms.hpo.medianstop_assessor import MedianstopAssessor
from nni.assessor import AssessResult

from harness.experiment.stops import record_stop, stops_file

log = logging.getLogger(__name__)


class RecordedStops:
    """A mixin for an nni.assessor.Assessor: each trial it stops is recorded before NNI is told to stop it."""

    def assess_trial(self, trial_job_id: str, trial_history: list) -> Any:
        result = super().assess_trial(trial_job_id, trial_history)  # type: ignore[misc]
        if result is AssessResult.Bad or result is False:  # NNI takes a bool too (msg_dispatcher.py)
            self.record(trial_job_id, len(trial_history), self.stop_reason(trial_job_id, trial_history))
        return result

    def stop_reason(self, trial_job_id: str, trial_history: list) -> str:
        return f"{type(self).__name__} judged it at step {len(trial_history)}"

    def record(self, trial_job_id: str, step: int, reason: str) -> None:
        # The dispatcher's environment names the experiment's log folder (nnimanager.js: NNI_LOG_DIRECTORY).
        path = stops_file(os.environ.get("NNI_LOG_DIRECTORY"))
        if path is None:
            log.warning("NNI_LOG_DIRECTORY is not set: the stop of trial %s is not recorded", trial_job_id)
            return
        try:
            record_stop(path, trial_job_id, step, reason)
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
