"""When an NNI 3.0 experiment has ended, and when it has stalled: decisions on what the REST API said, with the
clock passed in (pure, tested without NNI).

The end states (nni_node/core/nnimanager.js, read and measured on this machine):
- DONE: the trial budget (maxTrialNumber) or maxExperimentDuration is spent and every submitted trial has ended.
  Final.
- NO_MORE_TRIAL: the budget is spent, submitted trials are still being counted. It turns DONE at the manager's
  next poll of the trials (0.5 s) after the last one ends, so "NO_MORE_TRIAL with every trial ended" is a moment
  between the manager storing the last trial's end and setting DONE: it is followed until DONE, for a bound.
- TUNER_NO_MORE_TRIAL: the tuner returned fewer sets than asked. PBT between generations and Hyperband or BOHB
  between rounds say it too while their next set waits in the manager's queue (not yet listed), so it is final
  only when it persists, with every trial ended and no new one, for a while; a grid search that ran out says it
  for good.
The trials are read before the status: the other order can pair a status read just before the last trial's end
was stored with a trial list read just after."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FINISHED_TRIAL = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}
FAILED_EXPERIMENT = {"ERROR", "STOPPED"}
# The states an experiment that ran out of trials ends in (see above).
DONE_EXPERIMENT = {"DONE", "NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL"}
SETTLE = 10.0        # seconds TUNER_NO_MORE_TRIAL must last, every trial ended, before it counts as the end
DONE_WITHIN = 60.0   # seconds NO_MORE_TRIAL with every trial ended may take to turn DONE (it took ms here)
STALL_AFTER = 600.0  # seconds without a running trial, while trials remain, before the follower says it stalled


def all_ended(trials: list[dict[str, Any]]) -> bool:
    return all(trial.get("status") in FINISHED_TRIAL for trial in trials)


@dataclass
class Ending:
    """Feed it each poll (trials read first, then the status); it answers the final status once there is one."""
    settle: float = SETTLE
    done_within: float = DONE_WITHIN
    _since: tuple[str, int, float] | None = field(default=None, repr=False)

    def final(self, status: str | None, trials: list[dict[str, Any]], now: float) -> str | None:
        if status in FAILED_EXPERIMENT:
            return status
        if not all_ended(trials) or status not in DONE_EXPERIMENT:
            self._since = None
            return None
        if status == "DONE":
            return status
        if self._since is None or self._since[:2] != (status, len(trials)):
            self._since = (status, len(trials), now)  # a new trial or a new status starts the wait again
        bound = self.done_within if status == "NO_MORE_TRIAL" else self.settle
        return status if now - self._since[2] >= bound else None


@dataclass
class StallWatch:
    """Says once per stall when no trial has run for `after` seconds while the experiment still has trials to
    run (NNI's status RUNNING, or trials WAITING), or when trials only appear to run while NNI's log says they
    wait for a parameter set that never comes."""
    after: float = STALL_AFTER
    _last_change: float | None = field(default=None, repr=False)
    _seen: tuple = field(default=(), repr=False)
    _told: bool = field(default=False, repr=False)

    def stalled(self, status: str | None, trials: list[dict[str, Any]], now: float,
                waiting_for_set: Callable[[], bool]) -> bool:
        """`waiting_for_set`: whether NNI's log says a trial waits for a set (asked only once the rest holds)."""
        seen = tuple(sorted((str(t.get("trialJobId")), str(t.get("status"))) for t in trials)) + (status,)
        if seen != self._seen or self._last_change is None:
            self._seen, self._last_change, self._told = seen, now, False
            return False
        statuses = [t.get("status") for t in trials]
        remain = status == "RUNNING" or "WAITING" in statuses
        if self._told or not remain or now - self._last_change < self.after:
            return False
        if "RUNNING" in statuses and not waiting_for_set():
            self._last_change = now  # a trial runs: the log is read again only after another `after` seconds
            return False
        self._told = True
        return True
