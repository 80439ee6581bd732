"""Following an experiment through NNI's REST API: each trial as it ends (with the parameters it really trained
with and why NNI cancelled it), a heartbeat while trials run, a stall and what NNI's logs say of it, and the end
(harness/experiment/ending.py), bounded by a timeout."""
from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.data.labels import missing_tasks
from harness.errors import UserError
from harness.experiment.ending import FINISHED_TRIAL, STALL_AFTER, Ending, StallWatch, all_ended
from harness.experiment.logs import ASSESSOR_STOP, cancel_reasons, read_text, stall_evidence, tuner_failure
from harness.experiment.rest import NniRest, final_default, metric_default, parameters_of
from harness.experiment.stops import read_stops, stops_file
from harness.outputs.reading import find_run_of_trial, run_task
from harness.outputs.soft_csv import EVAL_NAME

CANCELLED = {"USER_CANCELED", "SYS_CANCELED"}
TRIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def describe(trial: dict[str, Any], reason: str | None = None, ran: dict[str, Any] | None = None) -> str:
    """One line for a trial that ended. `ran`: the parameters it trained with (its params.json), shown in place of
    NNI's record. A trial of the local service trains the set NNI records for it (harness/experiment/runtime.py),
    so they differ only where it could not read that record (its params.json says why), or on the remote
    service with reuseMode false."""
    recorded = parameters_of(trial)
    params = recorded if ran is None else ran
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    if ran is not None and ran != recorded:
        shown += " (NNI's web UI shows another trial's parameters for it: see its params.json, nni_handout)"
    score = final_default(trial)
    status = str(trial.get("status"))
    if status in CANCELLED:
        status += f" ({reason or 'stopped from the web UI or nnictl; nnimanager.log gives no reason'})"
    return f"trial {trial['trialJobId']} {status}" + (f" (default {score:.4f})" if score is not None
                                                      else "") + f": {shown}"


def ran_parameters(runs_dir: Path | None, trial_id: str) -> dict[str, Any] | None:
    """The parameters a trial trained with, from its run folder's params.json; None without one (a trial that
    failed or was stopped before its first epoch, or runs written elsewhere)."""
    if runs_dir is None or not TRIAL_ID.fullmatch(trial_id):
        return None
    run = find_run_of_trial(runs_dir, trial_id)
    ran = run.params.get("nni_parameters") if run is not None else None
    return ran if isinstance(ran, dict) else None


def latest_epochs(metrics: list[dict[str, Any]]) -> dict[str, tuple[int, float | None]]:
    """trial id -> (intermediate results so far, the latest one's default)."""
    latest: dict[str, tuple[int, float | None]] = {}
    for metric in metrics:
        if metric.get("type") != "PERIODICAL":
            continue
        count = latest.get(metric["trialJobId"], (0, None))[0] + 1
        latest[metric["trialJobId"]] = (count, metric_default(metric.get("data")))
    return latest


def heartbeat(trials: list[dict[str, Any]], metrics: list[dict[str, Any]], elapsed: float) -> str:
    """One line on what is running: '[12m05s] 1 running (XPId4 epoch 3, default 0.7120), 2 ended, 1 waiting'."""
    latest = latest_epochs(metrics)
    running = []
    for trial in trials:
        if trial.get("status") == "RUNNING":
            epochs, score = latest.get(trial["trialJobId"], (0, None))
            progress = f"epoch {epochs}" + (f", default {score:.4f}" if score is not None else "")
            running.append(f"{trial['trialJobId']} {progress if epochs else 'first epoch'}")
    ended = sum(trial.get("status") in FINISHED_TRIAL for trial in trials)
    waiting = sum(trial.get("status") in {"WAITING", "UNKNOWN"} for trial in trials)
    minutes, seconds = divmod(int(elapsed), 60)
    return (f"[{minutes}m{seconds:02d}s] {len(running)} running" + (f" ({'; '.join(running)})" if running else "")
            + f", {ended} ended" + (f", {waiting} waiting" if waiting else ""))


def stop_reasons(manager_log: Path | None) -> dict[str, str]:
    """trial id -> why NNI cancelled it: the assessor's own record of its stops (its reason included), over what
    nnimanager.log says."""
    reasons = cancel_reasons(read_text(manager_log))
    if manager_log is not None:
        for trial, stop in read_stops(stops_file(manager_log.parent)).items():
            reasons[trial] = f"{ASSESSOR_STOP}: {stop['reason']}"
    return reasons


class Follower:
    """Polls NNI until every trial has ended and NNI has nothing left to run (or the timeout)."""

    def __init__(self, rest: NniRest, echo: Callable[[str], None] = print, manager_log: Path | None = None,
                 runs_dir: Path | None = None, heartbeat_every: float = 60.0, poll: float = 1.0,
                 stall_after: float = STALL_AFTER) -> None:
        self.rest, self.echo, self.manager_log, self.runs_dir = rest, echo, manager_log, runs_dir
        self.heartbeat_every, self.poll = heartbeat_every, poll
        self.reported: set[str] = set()
        self.ending, self.stall = Ending(), StallWatch(stall_after)

    def report_ended(self, trials: list[dict[str, Any]]) -> None:
        ended = [t for t in trials if t.get("status") in FINISHED_TRIAL and t["trialJobId"] not in self.reported]
        reasons = stop_reasons(self.manager_log) if any(t["status"] in CANCELLED for t in ended) else {}
        for trial in ended:
            self.reported.add(trial["trialJobId"])
            self.echo(describe(trial, reasons.get(trial["trialJobId"]),
                               ran_parameters(self.runs_dir, trial["trialJobId"])))

    def check_tuner(self, trials: list[dict[str, Any]]) -> None:
        if self.manager_log is None or not all_ended(trials):
            return
        dispatcher_log = self.manager_log.with_name("dispatcher.log")
        failure = tuner_failure(read_text(dispatcher_log))
        if failure:
            raise UserError(f"NNI's tuner stopped with {failure} ({dispatcher_log}): no further trial will start, "
                            f"so the experiment cannot end")

    def check_stall(self, status: str | None, trials: list[dict[str, Any]]) -> None:
        if not self.stall.stalled(status, trials, time.monotonic(),
                                  lambda: "No parameters available" in read_text(self.manager_log)):
            return
        manager_log = read_text(self.manager_log)
        dispatcher_log = read_text(self.manager_log.with_name("dispatcher.log")) if self.manager_log else ""
        waiting = sum(t.get("status") in {"WAITING", "UNKNOWN"} for t in trials)
        running = sum(t.get("status") == "RUNNING" for t in trials)
        evidence = stall_evidence(manager_log, dispatcher_log) or [
            "nothing in nnimanager.log or dispatcher.log explains it" if self.manager_log else "NNI's logs not read"]
        self.echo(f"the experiment looks stalled: no trial has run for {self.stall.after / 60:.0f} min while NNI "
                  f"says {status} ({waiting} waiting, {running} running). NNI's logs say:\n  "
                  + "\n  ".join(evidence))

    def wait(self, timeout: float) -> str:
        """NNI's final experiment status; prints each trial as it ends and a heartbeat line now and then."""
        started = time.monotonic()
        deadline, next_beat = started + timeout, started + self.heartbeat_every
        while time.monotonic() < deadline:
            trials = self.rest.trials()  # before the status: harness/experiment/ending.py says why
            status = self.rest.status().get("status")
            self.report_ended(trials)
            final = self.ending.final(status, trials, time.monotonic())
            if final is not None:
                return final
            self.check_tuner(trials)
            self.check_stall(status, trials)
            if time.monotonic() >= next_beat:
                self.echo(heartbeat(trials, self.rest.metrics(), time.monotonic() - started))
                next_beat = time.monotonic() + self.heartbeat_every
            time.sleep(self.poll)
        raise UserError(f"the experiment did not finish within {timeout:.0f} s (it keeps running; nnictl stop)")


def wait(rest: NniRest, timeout: float, poll: float = 1.0, echo: Callable[[str], None] = print,
         manager_log: Path | None = None, heartbeat_every: float = 60.0, runs_dir: Path | None = None) -> str:
    """Follower(...).wait(timeout), for callers that follow once."""
    return Follower(rest, echo, manager_log, runs_dir, heartbeat_every, poll).wait(timeout)


def soft_csvs(working_dir: Path, experiment_id: str) -> list[Path]:
    return sorted(p for p in (working_dir / experiment_id).glob("*/*.csv") if EVAL_NAME.fullmatch(p.name))


def ensemble_hint(experiment_dir: Path, csvs: list[Path], data_dir: Path | None) -> str:
    """The command that blends this experiment, as it can be run; a sentence instead when there is nothing to blend
    or the soft CSVs cannot make a whole submission (the ensemble's own rule: harness.data.labels.missing_tasks)."""
    if not csvs:
        return ("no soft CSV was written (no epoch reached the trials' --dump_threshold with a falling train loss), "
                "so there is nothing to ensemble yet: train longer (-- --epochs N) or lower --dump_threshold")
    present = {task for task in map(run_task, {path.parent for path in csvs}) if task}
    missing = missing_tasks(present)
    if missing:
        return (f"nothing to ensemble into a submission yet: the soft CSVs predict {', '.join(sorted(present))} but "
                f"no run dumped {' or '.join(missing)} (nor an 18-class multi or multihead run, which covers every "
                f"task): train longer (-- --epochs N), lower --dump_threshold, or run more trials")
    info = data_dir / "eval" / "info.csv" if data_dir is not None else None
    command = ["python", "-m", "ensemble", "--from", str(experiment_dir), "--select"]
    if info is not None and info.is_file():
        command += ["--info", str(info)]
    return "ensemble: " + shlex.join(command + ["-o", "submission.csv"])
