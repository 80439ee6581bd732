"""The trial's side of NNI, imported only when NNI started the trial.

`import nni` costs about 2 s of a trial's start-up on a 2-core CPU (NNI 3.0 loads scipy.stats for its search-space
types and pandas for json_tricks; measured with `python -X importtime`, README "Speed"). A standalone trial
(`python trial.py ...`, the tests, the benchmarks) needs none of it: NNI itself treats a process without NNI_EXP_ID
as standalone (nni/trial.py: experiment id 'STANDALONE'), so the same variable decides here, before anything of
nni is imported."""
from __future__ import annotations

import datetime
import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("trial")


def under_nni() -> bool:
    """True in a process NNI's training service started (it sets NNI_EXP_ID, as nni/trial.py reads it)."""
    return bool(os.environ.get("NNI_EXP_ID"))


def next_parameters() -> dict[str, Any]:
    """The tuner's parameters for this trial; {} standalone."""
    if not under_nni():
        return {}
    import nni

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without runtime.*")
        return nni.get_next_parameter() or {}


def trial_identity() -> tuple[str, str]:
    """(experiment id, trial id) from NNI; a standalone run gets 'standalone' and a time-stamped trial id."""
    if not under_nni():
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return "standalone", f"{stamp}-{os.getpid()}"
    import nni

    return nni.get_experiment_id(), nni.get_trial_id()


def sequence_id() -> int:
    """NNI's "Trial No." (0 standalone, as NNI says)."""
    if not under_nni():
        return 0
    import nni

    return nni.get_sequence_id()


def parameter_set_id() -> int | str | None:
    """The id of the parameter set this trial received, the one its results are reported under (None standalone,
    and for a set added by hand in the web UI). NNI 3.0's local service can hand two trials that start together
    each other's sets, and its web UI then shows the set it meant, not this one: params.json records both."""
    if not under_nni():
        return None
    import nni.trial

    received = nni.trial._params  # NNI 3.0 (its last release) keeps the whole record there, id included
    return received.get("parameter_id") if received else None


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})  # a trialCommand NNI runs through a shell ('cd x && ...')


def process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), which tells it from a later
    process given the same id; None when there is no such process, or only its exit status is left (a zombie),
    or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces and parentheses
    return None if fields[0] in ("Z", "X") else fields[19]


def process_parent(pid: int) -> tuple[str, int] | None:
    """(command name, parent id) of a process, from /proc; None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    return name, int(stat.rsplit(")", 1)[1].split()[1])


def manager_process() -> int:
    """The process that started this trial: the parent, or above the shells NNI may run the trialCommand through
    (NNI 3.0's local service spawns it with /bin/bash -c from the manager's own node process)."""
    pid = os.getppid()
    for _ in range(8):
        found = process_parent(pid)
        if found is None or found[0] not in SHELLS or found[1] <= 1:
            return pid
        pid = found[1]
    return pid


class ManagerWatch:
    """An epoch sink for trials under NNI: after each epoch (once its checkpoint and records are written) it checks
    that the process that started the trial, NNI's manager or trial keeper, still lives; when it is gone (killed,
    crashed), nothing hears the trial's results any more and `nnictl resume` would run the same trial again on the
    same run folder, so the trial stops as a SIGTERM would stop it: stopped.json, last.pt kept. A check is one read
    of /proc (Linux; elsewhere the parent's id is compared): no wait at all."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.pid = manager_process()
        self.started = process_start(self.pid)
        self.parent = os.getppid()

    def gone(self) -> bool:
        """The parent changed (an exited parent's children go to init or a subreaper), or the manager above the
        shells no longer runs."""
        if os.getppid() != self.parent:
            return True
        return self.started is not None and process_start(self.pid) != self.started

    def epoch(self, record: dict[str, Any]) -> None:
        if self.gone():
            log.warning("the NNI manager that started this trial (process %d) is gone: stopping after epoch %d "
                        "(last.pt kept; `nnictl resume` continues the trial)", self.pid, record["epoch"])
            self.stop.request("NNI manager gone")

    def close(self, best: dict[str, Any] | None) -> None:
        pass
