"""What NNI says only in its log files: why a trial was cancelled (nnimanager.log) and why the tuner died
(dispatcher.log)."""
from __future__ import annotations

import re
from pathlib import Path

_CANCEL_LINE = re.compile(r"Trial job (\S+) has been canceled because (.+?)\.?$")
# The assessor's stop: the manager logs the id as the JSON string the dispatcher sent ('cancelTrialJob: "AWguh"');
# the web UI's is 'User cancelTrialJob: AWguh', an experiment's stop logs the id bare.
_ASSESSOR_LINE = re.compile(r"\(NNIManager\) cancelTrialJob: \"(\S+)\"$")
_USER_LINE = re.compile(r"User cancelTrialJob: (\S+)$")
ASSESSOR_STOP = "stopped by the assessor"
MAX_LOG_BYTES = 32 * 2**20  # only the end of a larger log is read: a follower polls it every few seconds


def read_text(path: Path | None) -> str:
    """A log's text ('' when it is not there yet), its last MAX_LOG_BYTES when it is larger."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - MAX_LOG_BYTES))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def cancel_reasons(manager_log: str) -> dict[str, str]:
    """trial id -> why NNI cancelled it, from nnimanager.log; NNI's REST API does not say. NNI 3.0's local service
    shows a trial its assessor stopped as USER_CANCELED, never EARLY_STOPPED: it records the early stop only after
    the trial's end has set its status (nni_node/training_service/v3/compat.js, cancelTrialJob)."""
    reasons = {}
    for line in manager_log.splitlines():
        line = line.strip()
        if found := _CANCEL_LINE.search(line):
            reasons[found.group(1)] = found.group(2).removeprefix("it is ")
        elif found := _ASSESSOR_LINE.search(line):
            reasons[found.group(1)] = ASSESSOR_STOP
        elif found := _USER_LINE.search(line):
            reasons[found.group(1)] = "cancelled from the web UI"
    return reasons


def tuner_failure(dispatcher_log: str) -> str | None:
    """The error that ended NNI's tuner process, read from its dispatcher.log; None while the tuner runs. NNI 3.0
    keeps such an experiment RUNNING with no trial left to start, and says why only in that log."""
    lines = dispatcher_log.splitlines()
    if not any("Dispatcher exiting" in line for line in lines):
        return None
    errors = [line.strip() for line in lines if re.match(r"\w+(Error|Exception)\b", line.strip())]
    return errors[-1] if errors else "no error logged"
