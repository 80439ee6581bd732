"""Run an NNI experiment to the end: start it with nnictl, follow its trials through NNI's REST API, summarise.

    python -m harness.experiment --config config.demo.yml [--data_dir data/demo] [--port 8080] [--stop]

`nnictl create --config config.yml` alone is the everyday way to start a search; this wrapper is for when you want
to wait for the result (the demo, the tests, a script): it writes a copy of the config with its overrides into the
experiment folder, starts it, prints each trial as it ends, and lists the soft CSVs at the end."""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from harness.data.labels import csv_task, missing_tasks
from harness.errors import UserError, run_cli

FINISHED_TRIAL = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}
FAILED_EXPERIMENT = {"ERROR", "STOPPED"}
# NNI says DONE when the trial budget is spent; NO_MORE_TRIAL when a tuner has exhausted its space.
DONE_EXPERIMENT = {"DONE", "NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path} not found: expected an NNI experiment config (config.yml, config.demo.yml)")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(config, dict) or "trialCommand" not in config:
        raise UserError(f"{path} has no trialCommand: expected an NNI v2 experiment config")
    return config


def with_overrides(config: dict[str, Any], config_dir: Path, working_dir: Path | None = None,
                   trial_args: list[str] | None = None, max_trials: int | None = None,
                   drop_assessor: bool = False, cpu: bool = False) -> dict[str, Any]:
    """A copy of `config` that can live in any folder: its paths made absolute against config_dir, the extra trial
    flags merged into trialCommand (a flag already there gets the new value in place, so the command shown in the
    web UI names each flag once), and the trials' run folders put beside NNI's own files in the working
    directory."""
    result = dict(config)
    for key in ("searchSpaceFile", "trialCodeDirectory", "experimentWorkingDirectory"):
        if key in result:
            result[key] = str((config_dir / os.path.expanduser(str(result[key]))).resolve())
    if working_dir is not None:
        result["experimentWorkingDirectory"] = str(Path(working_dir).resolve())
    output_dir = result.get("experimentWorkingDirectory")
    args = list(trial_args or [])
    if output_dir:
        args = ["--output_dir", output_dir] + args
    result["trialCommand"] = merge_flags(str(config["trialCommand"]).strip(), args)
    for algorithm in ("tuner", "assessor"):  # custom ones (harness.tuners) are imported from their codeDirectory
        if isinstance(result.get(algorithm), dict) and "codeDirectory" in result[algorithm]:
            result[algorithm] = {**result[algorithm], "codeDirectory": str(
                (config_dir / os.path.expanduser(str(result[algorithm]["codeDirectory"]))).resolve())}
    if max_trials is not None:
        result["maxTrialNumber"] = max_trials
    if drop_assessor:
        result.pop("assessor", None)
    if cpu:
        result = on_cpu(result)
    return result


GPU_SETTINGS = ("useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices")


def on_cpu(config: dict[str, Any]) -> dict[str, Any]:
    """A GPU config for a machine without GPUs: with trialGpuNumber > 0 NNI 3.0's local service asks NVML for
    GPUs and fails where there is none, so the GPU settings go; the trials then train on the CPU."""
    result = {key: value for key, value in config.items() if key != "trialGpuNumber"}
    if isinstance(result.get("trainingService"), dict):
        result["trainingService"] = {key: value for key, value in result["trainingService"].items()
                                     if key not in GPU_SETTINGS}
    return result


def merge_flags(command: str, args: list[str]) -> str:
    """`command` with each `--flag value` pair of args replacing that flag's value where the command has it, and
    appended where it does not (a lone flag without a value is appended as it is)."""
    words = shlex.split(command)
    extra: list[str] = []
    i = 0
    while i < len(args):
        flag = args[i]
        has_value = flag.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--")
        value = args[i + 1] if has_value else None
        i += 2 if has_value else 1
        if value is not None and flag in words[:-1]:
            words[words.index(flag) + 1] = value
        else:
            extra += [flag] if value is None else [flag, value]
    return shlex.join(words + extra)


class NniRest:
    """The few calls of NNI's REST API (the web UI's own) that following an experiment needs."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/nni"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base}/{path}", timeout=10) as response:
            return json.load(response)

    def status(self) -> dict[str, Any]:
        return self.get("check-status")

    def trials(self) -> list[dict[str, Any]]:
        return self.get("trial-jobs")

    def metrics(self) -> list[dict[str, Any]]:
        return self.get("metric-data")

    def experiment(self) -> dict[str, Any]:
        return self.get("experiment")


def nnictl() -> str:
    # Trials run `python` from the PATH of the process that starts them: the environment this module runs in.
    found = shutil.which("nnictl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if not found:
        raise UserError("nnictl not found: install the requirements (scripts/demo.sh does) and activate the "
                        "environment")
    return found


def nnictl_env() -> dict[str, str]:
    """The environment nnictl runs in: this interpreter's folder first on the PATH (trials inherit it), and
    setuptools' pkg_resources deprecation warning, which nnictl triggers on every call and a user cannot act on,
    filtered out (only that one warning: others still show)."""
    filters = [w for w in os.environ.get("PYTHONWARNINGS", "").split(",") if w]
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                PYTHONWARNINGS=",".join(filters + ["ignore:pkg_resources is deprecated:UserWarning"]))


def start(config_path: Path, port: int) -> str:
    """Start the experiment in the background; returns its id once the REST server answers."""
    # nnictl through harness.nni_launch: the same command, with a web server allowed more than NNI's 3 s to answer.
    nnictl()  # a clear error when NNI is not installed in this environment
    done = subprocess.run([sys.executable, "-m", "harness.nni_launch", "create", "--config",
                           str(Path(config_path).resolve()),
                           "--port", str(port)], capture_output=True, text=True, env=nnictl_env(),
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"nnictl create --config {config_path} failed: {tail[-1] if tail else done.returncode}")
    rest = NniRest(port)
    for _ in range(60):
        try:
            return rest.experiment()["id"]
        except (urllib.error.URLError, ConnectionError, KeyError):
            time.sleep(1)
    raise UserError(f"the NNI manager did not answer on port {port} within a minute (see nnictl's log)")


def stop(experiment_id: str) -> None:
    subprocess.run([nnictl(), "stop", experiment_id], capture_output=True, text=True, env=nnictl_env())


def parameters_of(trial: dict[str, Any]) -> dict[str, Any]:
    """NNI keeps each trial's parameters as a JSON string inside a list."""
    for entry in trial.get("hyperParameters") or []:
        return json.loads(entry).get("parameters", {})
    return {}


def final_default(trial: dict[str, Any]) -> float | None:
    for entry in trial.get("finalMetricData") or []:
        value = json.loads(entry["data"])
        value = json.loads(value) if isinstance(value, str) else value
        return value.get("default") if isinstance(value, dict) else value
    return None


CANCELLED = {"USER_CANCELED", "SYS_CANCELED"}
_CANCEL_LINE = re.compile(r"Trial job (\S+) has been canceled because (.+?)\.?$")
# The assessor's stop: the manager logs the id as the JSON string the dispatcher sent ('cancelTrialJob: "AWguh"');
# the web UI's is 'User cancelTrialJob: AWguh', an experiment's stop logs the id bare.
_ASSESSOR_LINE = re.compile(r"\(NNIManager\) cancelTrialJob: \"(\S+)\"$")
_USER_LINE = re.compile(r"User cancelTrialJob: (\S+)$")
ASSESSOR_STOP = "stopped by the assessor"


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


def describe(trial: dict[str, Any], reason: str | None = None, ran: dict[str, Any] | None = None) -> str:
    """One line for a trial that ended. `ran`: the parameters it trained with (its params.json), shown in place of
    NNI's record, which names another trial's set when NNI 3.0 swapped the sets of trials started together."""
    recorded = parameters_of(trial)
    params = recorded if ran is None else ran
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    if ran is not None and ran != recorded:
        shown += " (NNI's web UI shows another trial's parameters for it: see README, The run folder)"
    score = final_default(trial)
    status = trial["status"]
    if status in CANCELLED:
        status += f" ({reason or 'stopped from the web UI or nnictl; nnimanager.log gives no reason'})"
    return f"trial {trial['trialJobId']} {status}" + (f" (default {score:.4f})" if score is not None
                                                      else "") + f": {shown}"


def ran_parameters(runs_dir: Path | None, trial_id: str) -> dict[str, Any] | None:
    """The parameters a trial trained with, from its run folder's params.json; None without one (a trial that
    failed or was stopped before its first epoch, or runs written elsewhere)."""
    if runs_dir is None:
        return None
    for path in runs_dir.glob(f"*_{trial_id}/params.json"):
        try:
            ran = json.loads(path.read_text()).get("nni_parameters")
        except (OSError, ValueError, AttributeError):
            return None
        return ran if isinstance(ran, dict) else None
    return None


def latest_epochs(metrics: list[dict[str, Any]]) -> dict[str, tuple[int, float | None]]:
    """trial id -> (intermediate results so far, the latest one's default)."""
    latest: dict[str, tuple[int, float | None]] = {}
    for metric in metrics:
        if metric.get("type") != "PERIODICAL":
            continue
        value = json.loads(metric["data"])
        value = json.loads(value) if isinstance(value, str) else value
        count = latest.get(metric["trialJobId"], (0, None))[0] + 1
        latest[metric["trialJobId"]] = (count, value.get("default") if isinstance(value, dict) else value)
    return latest


def heartbeat(trials: list[dict[str, Any]], metrics: list[dict[str, Any]], elapsed: float) -> str:
    """One line on what is running: '[12m05s] 1 running (XPId4 epoch 3, default 0.7120), 2 ended, 1 waiting'."""
    latest = latest_epochs(metrics)
    running = []
    for trial in trials:
        if trial["status"] == "RUNNING":
            epochs, score = latest.get(trial["trialJobId"], (0, None))
            progress = f"epoch {epochs}" + (f", default {score:.4f}" if isinstance(score, (int, float)) else "")
            running.append(f"{trial['trialJobId']} {progress if epochs else 'first epoch'}")
    ended = sum(trial["status"] in FINISHED_TRIAL for trial in trials)
    waiting = sum(trial["status"] in {"WAITING", "UNKNOWN"} for trial in trials)
    minutes, seconds = divmod(int(elapsed), 60)
    return (f"[{minutes}m{seconds:02d}s] {len(running)} running" + (f" ({'; '.join(running)})" if running else "")
            + f", {ended} ended" + (f", {waiting} waiting" if waiting else ""))


def wait(rest: NniRest, timeout: float, poll: float = 1.0, echo=print, manager_log: Path | None = None,
         heartbeat_every: float = 60.0, runs_dir: Path | None = None) -> str:
    """Until every trial has ended and NNI has nothing left to run; prints each trial as it ends (a cancelled
    one with NNI's reason, read from manager_log; with the parameters of its run folder under runs_dir) and a
    heartbeat line every `heartbeat_every` seconds."""
    reported: set[str] = set()
    started = time.monotonic()
    deadline, next_beat = started + timeout, started + heartbeat_every
    while time.monotonic() < deadline:
        status = rest.status()["status"]
        trials = rest.trials()
        ended = [t for t in trials if t["status"] in FINISHED_TRIAL and t["trialJobId"] not in reported]
        reasons = cancel_reasons(read_text(manager_log)) if any(t["status"] in CANCELLED for t in ended) else {}
        for trial in ended:
            reported.add(trial["trialJobId"])
            echo(describe(trial, reasons.get(trial["trialJobId"]), ran_parameters(runs_dir, trial["trialJobId"])))
        if status in FAILED_EXPERIMENT:
            return status
        if status in DONE_EXPERIMENT and all(t["status"] in FINISHED_TRIAL for t in trials):
            return status
        if manager_log is not None and all(t["status"] in FINISHED_TRIAL for t in trials):
            failure = tuner_failure(read_text(manager_log.with_name("dispatcher.log")))
            if failure:
                raise UserError(f"NNI's tuner stopped with {failure} ({manager_log.with_name('dispatcher.log')}): "
                                f"no further trial will start, so the experiment cannot end")
        if time.monotonic() >= next_beat:
            echo(heartbeat(trials, rest.metrics(), time.monotonic() - started))
            next_beat = time.monotonic() + heartbeat_every
        time.sleep(poll)
    raise UserError(f"the experiment did not finish within {timeout:.0f} s (it keeps running; nnictl stop)")


def tuner_failure(dispatcher_log: str) -> str | None:
    """The error that ended NNI's tuner process, read from its dispatcher.log; None while the tuner runs. NNI 3.0
    keeps such an experiment RUNNING with no trial left to start, and says why only in that log."""
    lines = dispatcher_log.splitlines()
    if not any("Dispatcher exiting" in line for line in lines):
        return None
    errors = [line.strip() for line in lines if re.match(r"\w+(Error|Exception)\b", line.strip())]
    return errors[-1] if errors else "no error logged"


def read_text(path: Path | None) -> str:
    try:
        return path.read_text(errors="replace") if path is not None else ""
    except OSError:
        return ""


def soft_csvs(working_dir: Path, experiment_id: str) -> list[Path]:
    from harness.outputs.soft_csv import EVAL_NAME

    return sorted(p for p in (working_dir / experiment_id).glob("*/*.csv") if EVAL_NAME.fullmatch(p.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config.demo.yml"))
    parser.add_argument("--data_dir", help="overrides the --data_dir of the config's trialCommand")
    parser.add_argument("--port", type=int, default=8080, help="web UI port (a free one if this is taken)")
    parser.add_argument("--max_trials", type=int, help="overrides maxTrialNumber")
    parser.add_argument("--working_dir", type=Path, help="overrides experimentWorkingDirectory")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait for the end")
    parser.add_argument("--cpu", action="store_true",
                        help="run a GPU config (config.yml, config.hyperband.yml, ...) on a machine without GPUs")
    parser.add_argument("--stop", action="store_true", help="stop the experiment (and its web UI) at the end")
    parser.add_argument("trial_args", nargs=argparse.REMAINDER,
                        help="after --: more trial.py flags, appended to the trialCommand")
    args = parser.parse_args(argv)
    trial_args = [a for a in args.trial_args if a != "--"]
    if args.data_dir:
        if not (Path(args.data_dir) / "train").is_dir():
            raise UserError(f"{args.data_dir}/train not found: expected a data set folder holding train/")
        trial_args = ["--data_dir", str(Path(args.data_dir).resolve())] + trial_args

    config = with_overrides(load_config(args.config), args.config.parent.resolve(), args.working_dir, trial_args,
                            args.max_trials, cpu=args.cpu)
    working_dir = Path(config["experimentWorkingDirectory"])
    staged = working_dir / ".configs" / f"{args.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}.yml"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(yaml.safe_dump(config, sort_keys=False))
    port = args.port if port_is_free(args.port) else free_port()
    if port != args.port:
        print(f"port {args.port} is taken: using {port}")

    before = set(working_dir.iterdir())
    try:
        experiment_id = start(staged, port)
    except UserError:
        remove_failed_start(working_dir, before, staged)
        raise
    print(f"experiment {experiment_id} started from {staged}\n"
          f"web UI: http://localhost:{port} (no authentication: reach it through an SSH tunnel, "
          f"ssh -L {port}:localhost:{port} this-machine)")
    rest = NniRest(port)
    try:
        status = wait(rest, args.timeout, manager_log=working_dir / experiment_id / "log" / "nnimanager.log",
                      runs_dir=working_dir / experiment_id)
        succeeded = sum(trial["status"] == "SUCCEEDED" for trial in rest.trials())
    except BaseException:
        if args.stop:
            stop(experiment_id)
        raise
    csvs = soft_csvs(working_dir, experiment_id)
    print(f"experiment {experiment_id} {status}: {succeeded} trial(s) succeeded, {len(csvs)} eval soft CSVs under "
          f"{working_dir / experiment_id}")
    for run in sorted({path.parent for path in csvs}):
        print(f"  {run.name}: {sum(path.parent == run for path in csvs)}")
    if args.stop:
        stop(experiment_id)
        print(f"stopped; `nnictl view {experiment_id}` shows it again")
    else:
        print(f"the web UI stays up: `nnictl stop {experiment_id}` when done")
    print(ensemble_hint(working_dir / experiment_id, csvs, trial_data_dir(config["trialCommand"])))
    if not succeeded:
        print("no trial succeeded: see the trial logs under "
              f"{working_dir / experiment_id / 'environments'} (or the web UI's trial detail)", file=sys.stderr)
        return 1
    return 0 if status in DONE_EXPERIMENT else 1


def trial_data_dir(trial_command: str) -> Path | None:
    """The --data_dir the trials run with (the last one, as argparse reads it), or None."""
    words = shlex.split(trial_command)
    found = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--data_dir"]
    return Path(found[-1]) if found else None


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


def run_task(run: Path) -> str | None:
    """The task a run folder's soft CSVs predict, from its params.json (None when unreadable)."""
    try:
        return csv_task(json.loads((run / "params.json").read_text())["classification"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_failed_start(working_dir: Path, before: set[Path], staged: Path) -> None:
    """What a failed `nnictl create` left: the experiment folder NNI made (only NNI's own files: nothing of the
    user's is in a folder made this second) and the staged config."""
    for made in set(working_dir.iterdir()) - before:
        if made.is_dir() and not any(made.glob("*/params.json")):
            shutil.rmtree(made, ignore_errors=True)
            print(f"removed {made}, the folder of the experiment that failed to start", file=sys.stderr)
    staged.unlink(missing_ok=True)


if __name__ == "__main__":
    run_cli(main, "python -m harness.experiment")
