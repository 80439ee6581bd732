"""Run an NNI experiment to the end: start it with nnictl, follow its trials through NNI's REST API, summarise.

    python -m harness.experiment --config config.demo.yml [--data_dir data/demo] [--port 8080] [--stop]

`nnictl create --config config.yml` alone is the everyday way to start a search; this wrapper is for when you want
to wait for the result (the demo, the tests, a script): it writes a copy of the config with its overrides into the
experiment folder, starts it, prints each trial as it ends, and lists the soft CSVs at the end."""
from __future__ import annotations

import argparse
import json
import os
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
                   drop_assessor: bool = False) -> dict[str, Any]:
    """A copy of `config` that can live in any folder: its paths made absolute against config_dir, the extra trial
    flags appended to trialCommand (argparse keeps the last value of a repeated flag), and the trials' run folders
    put beside NNI's own files in the working directory."""
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
    result["trialCommand"] = " ".join([str(config["trialCommand"]).strip()] + [shlex.quote(a) for a in args])
    if max_trials is not None:
        result["maxTrialNumber"] = max_trials
    if drop_assessor:
        result.pop("assessor", None)
    return result


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


def start(config_path: Path, port: int) -> str:
    """Start the experiment in the background; returns its id once the REST server answers."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    done = subprocess.run([nnictl(), "create", "--config", str(config_path), "--port", str(port)],
                          capture_output=True, text=True, env=env)
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
    subprocess.run([nnictl(), "stop", experiment_id], capture_output=True, text=True)


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


def describe(trial: dict[str, Any]) -> str:
    params = parameters_of(trial)
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    score = final_default(trial)
    return f"trial {trial['trialJobId']} {trial['status']}" + (f" (default {score:.4f})" if score is not None
                                                               else "") + f": {shown}"


def wait(rest: NniRest, timeout: float, poll: float = 3.0, echo=print) -> str:
    """Until every trial has ended and NNI has nothing left to run; prints each trial as it ends."""
    reported: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rest.status()["status"]
        trials = rest.trials()
        for trial in trials:
            if trial["status"] in FINISHED_TRIAL and trial["trialJobId"] not in reported:
                reported.add(trial["trialJobId"])
                echo(describe(trial))
        if status in FAILED_EXPERIMENT:
            return status
        if status in DONE_EXPERIMENT and all(t["status"] in FINISHED_TRIAL for t in trials):
            return status
        time.sleep(poll)
    raise UserError(f"the experiment did not finish within {timeout:.0f} s (it keeps running; nnictl stop)")


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
                            args.max_trials)
    working_dir = Path(config["experimentWorkingDirectory"])
    staged = working_dir / ".configs" / f"{args.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}.yml"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(yaml.safe_dump(config, sort_keys=False))
    port = args.port if port_is_free(args.port) else free_port()
    if port != args.port:
        print(f"port {args.port} is taken: using {port}")

    experiment_id = start(staged, port)
    print(f"experiment {experiment_id} started from {staged}\n"
          f"web UI: http://localhost:{port} (no authentication: reach it through an SSH tunnel, "
          f"ssh -L {port}:localhost:{port} this-machine)")
    try:
        status = wait(NniRest(port), args.timeout)
    except BaseException:
        if args.stop:
            stop(experiment_id)
        raise
    csvs = soft_csvs(working_dir, experiment_id)
    print(f"experiment {experiment_id} {status}: {len(csvs)} eval soft CSVs under {working_dir / experiment_id}")
    for run in sorted({path.parent for path in csvs}):
        print(f"  {run.name}: {sum(path.parent == run for path in csvs)}")
    if args.stop:
        stop(experiment_id)
        print(f"stopped; `nnictl view {experiment_id}` shows it again")
    else:
        print(f"the web UI stays up: `nnictl stop {experiment_id}` when done")
    print(f"ensemble: python -m ensemble --from {working_dir / experiment_id} --select -o submission.csv")
    return 0 if status in DONE_EXPERIMENT else 1


if __name__ == "__main__":
    run_cli(main, "python -m harness.experiment")
