"""An assessor for tests: it stops every trial at its first intermediate result, as Medianstop stops a poor one.
StopAtFirstResult records its stops as the harness's assessors do (harness.experiment.assessors.RecordedStops)."""
from nni.assessor import Assessor, AssessResult

from harness.experiment.assessors import RecordedStops


class StopAll(Assessor):
    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        return AssessResult.Bad


class StopAtFirstResult(RecordedStops, StopAll):
    pass
