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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.experiment.rest import API, NniRest, parameter_id_of, trial_record

log = logging.getLogger("trial")
RECORD_WAIT = 30.0  # seconds to wait for the manager's record of this trial (it is written just after the spawn)


def under_nni() -> bool:
    """True in a process NNI's training service started (it sets NNI_EXP_ID, as nni/trial.py reads it)."""
    return bool(os.environ.get("NNI_EXP_ID"))


@dataclass(frozen=True)
class Handout:
    """The parameter set a trial trains with, and how NNI came to give it that one.

    NNI 3.0's local service queues the sets first in, first out and hands the oldest to whichever trial asks
    first (nni_node/training_service/v3/compat.js, onRequestParameter), while its manager records for each trial
    the set it meant for it: the record every view shows (web UI, `nnictl experiment export`, the tuner's
    trial_end). Trials that start together, or after one that died before asking, then receive another trial's
    set. The trial asks once (which keeps the queue balanced: asking twice leaves a later trial waiting for ever),
    then reads the manager's record of itself and, when it names another set, trains that one and reports under
    its id: every view then names what ran."""
    parameters: dict[str, Any]          # what the trial trains with
    received: dict[str, Any] | None     # the record NNI's channel handed out: {parameter_id, parameters, ...}
    recorded: dict[str, Any] | None     # the manager's record of this trial; None when it could not be read
    note: str                           # one line: which set it trains, and why

    @property
    def differed(self) -> bool | None:
        return None if self.recorded is None or self.received is None else not same_set(self.received,
                                                                                            self.recorded)

    def record(self) -> dict[str, Any]:
        """params.json's NNI keys: NNI's trial number, the id of the set trained and its parameters, the handout."""
        return {"parameter_id": sequence_id(), "nni_parameter_set": parameter_set_id(),
                "nni_parameters": self.parameters, "nni_handout": self.describe() if under_nni() else None}

    def describe(self) -> dict[str, Any]:
        """params.json's record of the handout."""
        def brief(record: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if record is None else {"parameter_id": parameter_id_of(record),
                                                "parameter_source": record.get("parameter_source"),
                                                "parameters": record.get("parameters")}
        return {"received": brief(self.received), "recorded": brief(self.recorded), "differed": self.differed,
                "trained": "received" if self.recorded is None else "recorded",
                "note": self.note}


def same_set(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """The same parameter set: same id and same values (a trial re-run by `nnictl resume` receives its own set with
    parameter_source 'resumed', the manager's record says 'algorithm': the source does not count)."""
    return (parameter_id_of(first) == parameter_id_of(second)
            and first.get("parameters") == second.get("parameters"))


def manager_api() -> tuple[NniRest | None, str]:
    """The manager's REST API as this trial can reach it, or (None, why not). Only the local service's command
    channel lives on the manager's own web server (http://host:port[/prefix]/env/<env>/<trial>); on the remote
    service it is the machine's trial keeper (reuseMode false) or absent (reuseMode true, whose dispatcher binds
    each set to its trial anyway)."""
    platform = os.environ.get("NNI_PLATFORM")
    channel = os.environ.get("NNI_TRIAL_COMMAND_CHANNEL", "")
    if platform != "local":
        return None, f"NNI_PLATFORM is {platform!r}, whose command channel is not the manager's web server"
    if not channel.startswith(("http://", "https://")) or "/env/" not in channel:
        return None, f"NNI_TRIAL_COMMAND_CHANNEL {channel[:200]!r} is not the local service's http://.../env/... URL"
    return NniRest.at(channel.rsplit("/env/", 1)[0] + API), ""


def received_set() -> dict[str, Any] | None:
    """Asks NNI for this trial's set, exactly once; its whole record (nni.trial._params), None if it sent none."""
    import nni
    import nni.trial

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without runtime.*")
        got = nni.get_next_parameter()
    found = nni.trial._params  # NNI 3.0 (its last release) keeps the whole record there, id included
    if isinstance(found, dict) and found.get("parameters") is got and isinstance(got, dict):
        return found
    return {"parameter_id": None, "parameter_source": None, "parameters": got} if isinstance(got, dict) else None


def next_parameters(within: float = RECORD_WAIT) -> Handout:
    """The parameters this trial trains with: the set NNI's manager recorded for it, which its results are then
    reported under; the set received when the record cannot be had (said in the trial log and params.json).
    Standalone: no parameters."""
    if not under_nni():
        return Handout({}, None, None, "standalone: no NNI parameters")
    received = received_set()
    if os.environ.get("REUSE_MODE"):  # NNI's trial runner (remote reuseMode true) hands each trial its own set
        shown = parameter_id_of(received) if received else None
        return Handout(received["parameters"] if received else {}, received, None,
                       f"trains the set NNI handed out (id {shown}): in reuse mode it is the one NNI records")
    rest, why = manager_api()
    recorded, why = trial_record(rest, os.environ.get("NNI_TRIAL_JOB_ID", ""), within) if rest else ({}, why)
    if not recorded:
        shown = parameter_id_of(received) if received else None
        note = (f"trains the set NNI handed out (id {shown}): NNI's record of this trial could not be read "
                f"({why}), so its web UI and export may show another set for it")
        log.warning(note)
        return Handout(received["parameters"] if received else {}, received, None, note)
    if received is not None and same_set(received, recorded):
        return Handout(received["parameters"], received, recorded, "trains the set NNI records for this trial")
    import nni.trial

    nni.trial._params = recorded  # its results are reported under the recorded set's id
    note = (f"NNI handed this trial set {parameter_id_of(received) if received else None}, another trial's; "
            f"trains the set NNI records for it (id {parameter_id_of(recorded)}) and reports under that id")
    log.warning(note)
    return Handout(recorded["parameters"], received, recorded, note)


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
    """The id of the parameter set this trial trains with, the one its results are reported under (None
    standalone, and for a set added by hand in the web UI)."""
    if not under_nni():
        return None
    import nni.trial

    found = nni.trial._params
    return parameter_id_of(found) if isinstance(found, dict) else None


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
