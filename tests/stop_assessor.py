"""An assessor for tests: it stops every trial at its first intermediate result, as Medianstop stops a poor one."""
from nni.assessor import Assessor, AssessResult


class StopAtFirstResult(Assessor):
    def assess_trial(self, trial_job_id: str, trial_history: list) -> AssessResult:
        return AssessResult.Bad
