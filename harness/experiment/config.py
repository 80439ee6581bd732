"""Staging an experiment's config: a copy that can live in any folder, with the driver's overrides merged in."""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

from harness.atomic import make_folder, write_text
from harness.errors import UserError

GPU_SETTINGS = ("useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices")
PATH_KEYS = ("searchSpaceFile", "trialCodeDirectory", "experimentWorkingDirectory")


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
    for key in PATH_KEYS:
        if key in result:
            result[key] = str((config_dir / os.path.expanduser(str(result[key]))).resolve())
    if working_dir is not None:
        result["experimentWorkingDirectory"] = str(Path(working_dir).resolve())
    output_dir = result.get("experimentWorkingDirectory")
    args = list(trial_args or [])
    if output_dir:
        args = ["--output_dir", output_dir] + args
    result["trialCommand"] = merge_flags(str(config["trialCommand"]).strip(), args)
    for algorithm in ("tuner", "assessor"):  # custom ones (harness.experiment.tuners) come from their codeDirectory
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


def trial_data_dir(trial_command: str) -> Path | None:
    """The --data_dir the trials run with (the last one, as argparse reads it), or None."""
    words = shlex.split(trial_command)
    found = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--data_dir"]
    return Path(found[-1]) if found else None


def stage(config: dict[str, Any], name: str) -> Path:
    """The config written where NNI's own files go (<working dir>/.configs/<name>-<time>.yml), for nnictl."""
    folder = make_folder(Path(config["experimentWorkingDirectory"]) / ".configs")
    staged = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.yml"
    write_text(yaml.safe_dump(config, sort_keys=False), staged)
    return staged
