"""Run an NNI experiment to the end: start it with nnictl, follow its trials through NNI's REST API, summarise.

    python -m harness.experiment --config config.demo.yml [--data_dir data/demo] [--port 8080] [--stop]

`nnictl create --config config.yml` alone is the everyday way to start a search; this wrapper is for when you want
to wait for the result (the demo, the tests, a script): it writes a copy of the config with its overrides into the
experiment folder, starts it, prints each trial as it ends, and lists the soft CSVs at the end."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli import run_cli
from harness.errors import UserError
from harness.experiment.config import load_config, stage, trial_data_dir, with_overrides
from harness.experiment.ending import DONE_EXPERIMENT, STALL_AFTER
from harness.experiment.follower import Follower, ensemble_hint, soft_csvs
from harness.experiment.nnictl import free_port, port_is_free, remove_failed_start, start, stop
from harness.experiment.rest import NniRest

PROG = "python -m harness.experiment"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config.demo.yml"))
    parser.add_argument("--data_dir", help="overrides the --data_dir of the config's trialCommand")
    parser.add_argument("--port", type=int, default=8080, help="web UI port (a free one if this is taken)")
    parser.add_argument("--max_trials", type=int, help="overrides maxTrialNumber")
    parser.add_argument("--working_dir", type=Path, help="overrides experimentWorkingDirectory")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait for the end")
    parser.add_argument("--stall_after", type=float, default=STALL_AFTER,
                        help="seconds without a running trial, while trials remain, before saying the experiment "
                             "stalled and what NNI's logs say of it (it is then still followed)")
    parser.add_argument("--cpu", action="store_true",
                        help="run a GPU config (config.yml, config.hyperband.yml, ...) on a machine without GPUs")
    parser.add_argument("--stop", action="store_true", help="stop the experiment (and its web UI) at the end")
    parser.add_argument("trial_args", nargs=argparse.REMAINDER,
                        help="after --: more trial.py flags, appended to the trialCommand")
    return parser


def staged_config(args: argparse.Namespace) -> tuple[dict, Path]:
    """The config with the command line's overrides, written where NNI's files go."""
    trial_args = [a for a in args.trial_args if a != "--"]
    if args.data_dir:
        if not (Path(args.data_dir) / "train").is_dir():
            raise UserError(f"{args.data_dir}/train not found: expected a data set folder holding train/")
        trial_args = ["--data_dir", str(Path(args.data_dir).resolve())] + trial_args
    config = with_overrides(load_config(args.config), args.config.parent.resolve(), args.working_dir, trial_args,
                            args.max_trials, cpu=args.cpu)
    code = Path(str(config.get("trialCodeDirectory", args.config.parent.resolve())))
    if "trial.py" in config["trialCommand"] and not (code / "trial.py").is_file():
        raise UserError(f"{args.config}: trialCodeDirectory resolves to {code}, which has no trial.py: a config "
                        f"kept outside the checkout needs the checkout's absolute path there (and for a custom "
                        f"tuner's codeDirectory)")
    if "experimentWorkingDirectory" not in config:
        raise UserError(f"{args.config} has no experimentWorkingDirectory: set it (e.g. nni_experiments) or pass "
                        f"--working_dir, so the run folders land beside NNI's own files")
    return config, stage(config, args.config.stem)


def summary(working_dir: Path, experiment_id: str, status: str, succeeded: int) -> list[Path]:
    csvs = soft_csvs(working_dir, experiment_id)
    print(f"experiment {experiment_id} {status}: {succeeded} trial(s) succeeded, {len(csvs)} eval soft CSVs under "
          f"{working_dir / experiment_id}")
    for run in sorted({path.parent for path in csvs}):
        print(f"  {run.name}: {sum(path.parent == run for path in csvs)}")
    return csvs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config, staged = staged_config(args)
    working_dir = Path(config["experimentWorkingDirectory"])
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
        status = Follower(rest, manager_log=working_dir / experiment_id / "log" / "nnimanager.log",
                          runs_dir=working_dir / experiment_id, stall_after=args.stall_after).wait(args.timeout)
        succeeded = sum(trial.get("status") == "SUCCEEDED" for trial in rest.trials())
    except BaseException:
        if args.stop:
            stop(experiment_id)
        raise
    csvs = summary(working_dir, experiment_id, status, succeeded)
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


if __name__ == "__main__":
    run_cli(main, PROG)
