"""What NNI says only in its log files: why a trial was cancelled (nnimanager.log), why the tuner died
(dispatcher.log), and what a stalled experiment is waiting for."""
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


# A command worker of NNI's dispatcher logs the exception that ends it (msg_dispatcher_base.py,
# command_queue_worker); the process itself exits only at the manager's next command, which may never come.
_WORKER_DIED = re.compile(r"ERROR \(nni\.runtime\.msg_dispatcher_base/.*command_queue_worker")


def tuner_failure(dispatcher_log: str) -> str | None:
    """The error that ended NNI's tuner process, read from its dispatcher.log; None while the tuner runs. NNI 3.0
    keeps such an experiment RUNNING with no trial left to start, and says why only in that log. Only the last
    start counts: a resumed experiment's log keeps the previous run's 'Dispatcher exiting'."""
    lines = dispatcher_log.splitlines()
    starts = [i for i, line in enumerate(lines) if "Dispatcher started" in line]
    lines = lines[starts[-1]:] if starts else lines
    if not any("Dispatcher exiting" in line or _WORKER_DIED.search(line) for line in lines):
        return None
    errors = [line.strip() for line in lines if re.match(r"\w+(Error|Exception)\b", line.strip())]
    return errors[-1] if errors else "no error logged"


# nnimanager.log lines that say why no trial runs (read in NNI 3.0's code, most seen on this machine), each with
# what it means for a user.
STALL_SIGNS = (
    ("No parameters available", "a trial asked for a parameter set and none was queued: it waits for ever"),
    ("Only have", "NNI's GPU scheduler refuses the trial (trialGpuNumber too large for the GPUs it sees)"),
    ("Scheduling failed because the GPU constraint", "no GPU satisfies trialGpuNumber / maxTrialNumberPerGpu"),
    ("Failed to create trial", "the training service could not start a trial (it retries)"),
    ("Missing pong", "the tuner process stopped answering"),
    ("Drop connection", "NNI dropped its connection to the tuner process"),
    ("It is not supposed to receive more trials", "the tuner sent a trial after saying it had none left"),
)


def stall_evidence(manager_log: str, dispatcher_log: str) -> list[str]:
    """What NNI's logs say about an experiment that starts no trial: each sign's last line and how often it came,
    a trial submitted but never created, the tuner's death, and the manager's last status change."""
    lines = [line.strip() for line in manager_log.splitlines()]
    found = []
    for sign, meaning in STALL_SIGNS:
        hits = [line for line in lines if sign in line]
        if hits:
            found.append(f"nnimanager.log: {hits[-1]} ({meaning}; {len(hits)} such line{'s' * (len(hits) > 1)})")
    submitted = [i for i, line in enumerate(lines) if "submitTrialJob: form:" in line]
    if submitted and not any("Created trial" in line for line in lines[submitted[-1]:]):
        found.append(f"nnimanager.log: {lines[submitted[-1]]} ... with no 'Created trial' after it (the training "
                     f"service has not started the last trial submitted)")
    failure = tuner_failure(dispatcher_log)
    if failure:
        found.append(f"dispatcher.log: the tuner process ended with {failure}")
    changes = [line for line in lines if "Change NNIManager status from" in line]
    if changes:
        found.append(f"nnimanager.log: {changes[-1]}")
    return found
