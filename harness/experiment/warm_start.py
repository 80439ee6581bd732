"""`python -m harness.experiment --warm_start EXP_DIR`: a new search seeded with an earlier experiment's trials, so
that its tuner starts informed.

How: NNI's own import. Right after the experiment starts, the driver posts the earlier trials to NNI's REST API
(POST /api/v1/nni/experiment/import-data, what `nnictl experiment import` posts); the manager stores them and sends
them to the dispatcher, whose handle_import_data hands them to the tuner's import_data as [{'parameter': {...},
'value': ...}]. NNI's TPE adds each to its history ("Replayed N FINISHED trials" in dispatcher.log), so once it holds
as many results as its startup draws (n_startup_jobs, 20) it proposes from its model at once instead of at random.
`nnictl resume` imports the stored data again. The first trialConcurrency sets were already requested when the
import lands (NNI asks for them as soon as the tuner starts); with TPE they were random draws either way until 20
results are in. Assessors receive nothing: NNI's dispatcher passes imported data to the tuner only, so Medianstop
and ASHA judge the new trials against the new experiment's alone.

What is imported, per earlier run folder: params.json's value of every key of the new search space (what the trial
really ran, not NNI's record of it) and its final result, recomputed from its records with the new experiment's
--metric (the best epoch, as a trial reports it; K-fold: kfold.json's cross-validated epochs). Runs that did not
finish (stopped by an assessor or a signal: NNI never had their final result), that trained another task, or whose
values fall outside the new search space are left out, and counted."""
from __future__ import annotations

import json
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.outputs.reading import Run, best_record, find_runs, json_object, read_run

# Tuners whose import_data learns from the results (NNI 3.0's code), and why the others cannot be warm-started.
LEARNS = {"TPE", "TpeTuner", "Anneal", "AnnealTuner"}
REFUSED = {
    "Hyperband": "NNI 3.0's Hyperband ignores imported data (its handle_import_data does nothing) and draws every "
                 "bracket at random",
    "BOHB": "BOHB files each imported result under its TRIAL_BUDGET (max_budget without one) in its per-budget "
            "models, so trials of another length would be judged as if they had trained that budget",
    "PBTTuner": "PBT's import_data only rebuilds its own population when resuming (it needs each trial's "
                "save_checkpoint_dir of a complete generation) and refuses data once it runs",
    "Random": "random search does not learn from results",
    "RandomTuner": "random search does not learn from results",
    "Evolution": "NNI 3.0's Evolution ignores imported data (its import_data does nothing)",
    "GridSearch": "grid search only skips imported points, it does not learn from their results",
}
MAX_TRIALS = 10_000  # imported trials at most: NNI stores and replays them on every resume


@dataclass(frozen=True)
class WarmStart:
    data: list[dict[str, Any]]   # [{'parameter': {...}, 'value': float}], as import_data takes it
    left_out: dict[str, int]     # reason -> runs


def tuner_name(config: dict[str, Any]) -> str:
    """The config's tuner (or advisor): its builtin name or its class's name."""
    spec = config.get("tuner") or config.get("advisor") or {}
    if not isinstance(spec, dict):
        return "?"
    return str(spec.get("name") or str(spec.get("className", "?")).rsplit(".", 1)[-1])


def check_tuner(config: dict[str, Any]) -> None:
    """A one-line refusal for a tuner that cannot be warm-started."""
    name = tuner_name(config)
    if name in LEARNS:
        return
    reason = REFUSED.get(name, f"only tuners whose import_data learns from results can be warm-started "
                               f"({', '.join(sorted(n for n in LEARNS if not n.endswith('Tuner')))})")
    raise UserError(f"--warm_start cannot seed {name}: {reason}")


def flag(command: str, name: str, default: str) -> str:
    """A flag's value in a trialCommand (the last one, as argparse reads it)."""
    words = shlex.split(command)
    found = [words[i + 1] for i, word in enumerate(words[:-1]) if word == f"--{name}"]
    return found[-1] if found else default


def fits(value: Any, spec: dict[str, Any]) -> bool:
    """Whether NNI's TPE can take `value` for a search-space entry (format_parameters: a choice must be one of the
    values, a log range positive)."""
    kind, values = spec.get("_type"), spec.get("_value")
    if kind == "choice":
        return any(value == v and type(value) is not bool or value is v for v in values)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if kind in ("uniform", "quniform", "loguniform", "qloguniform", "randint"):
        low, high = float(values[0]), float(values[1])
        return low <= value <= high and (value > 0 or not kind.endswith("loguniform"))
    return True  # normal distributions: any number


def final_result(run: Run, metric: str) -> float | None:
    """The final result the trial reported, recomputed with `metric`: its best epoch (train accuracy without
    validation); K-fold: the best cross-validated epoch of kfold.json. None when it did not finish."""
    finished = run.stopped is None and run.records and run.records[-1]["epoch"] >= run.planned_epochs * max(
        int(run.params.get("folds", 1) or 1), 1)
    if not finished:
        return None
    records: Sequence[dict[str, Any]] = run.records
    if (run.params.get("validation") or {}).get("scheme") == "kfold":
        if not (run.folder / "kfold.json").is_file():
            return None
        records = json_object(run.folder / "kfold.json", "kfold.json").get("epochs") or []
    key = metric if any(r.get(metric) is not None for r in records) else "train_acc"
    best = best_record(records, key)
    return float(best[key]) if best else None


def trial_data(experiment_dir: Path, space: dict[str, Any], trial_command: str) -> WarmStart:
    """The earlier experiment's finished trials as import_data takes them."""
    if any(isinstance(v, dict) for spec in space.values() for v in spec.get("_value", []) or []):
        raise UserError("--warm_start: the search space has nested choices, which NNI cannot import")
    metric = flag(trial_command, "metric", "val_acc")
    tasks = space.get("classification", {}).get("_value") or [flag(trial_command, "classification", "multi")]
    data, left_out = [], {}
    for folder in find_runs(experiment_dir, "given to --warm_start"):
        reason, entry = entry_of(folder, space, metric, tasks)
        if reason:
            left_out[reason] = left_out.get(reason, 0) + 1
        else:
            data.append(entry)
    if not data:
        reasons = "; ".join(f"{count} {reason}" for reason, count in left_out.items())
        raise UserError(f"--warm_start {experiment_dir}: no finished trial fits the new search ({reasons})")
    return WarmStart(data[:MAX_TRIALS], left_out)


def entry_of(folder: Path, space: dict[str, Any], metric: str, tasks: Sequence[str]) -> tuple[str | None, dict]:
    """(why the run is left out, or None; its import entry)."""
    try:
        run = read_run(folder)
    except UserError:
        return "unreadable", {}
    if run.task not in tasks:
        return f"trained another task than {'/'.join(tasks)}", {}
    value = final_result(run, metric)
    if value is None:
        return "did not finish (no final result)", {}
    nni = run.params.get("nni_parameters") or {}
    parameter = {key: run.params[key] if key in run.params else nni.get(key) for key in space}
    if not all(fits(parameter[key], spec) for key, spec in space.items()):
        return "have values outside the new search space", {}
    return None, {"parameter": parameter, "value": value}


def read_space(path: Path) -> dict[str, Any]:
    space = json_object(Path(path), "search space")
    if not all(isinstance(spec, dict) and "_type" in spec for spec in space.values()):
        raise UserError(f"{path}: expected a search space ({{key: {{_type, _value}}}})")
    return space


def import_summary(warm: WarmStart, experiment_dir: Path, tuner: str) -> str:
    left = "; ".join(f"{count} {reason}" for reason, count in warm.left_out.items())
    return (f"warm start: {len(warm.data)} finished trial(s) of {experiment_dir} imported into {tuner}"
            + (f" (left out: {left})" if left else ""))


def tuner_started(log_dir: Path, timeout: float = 120, poll: float = 0.5) -> bool:
    """Whether NNI's dispatcher started (its dispatcher.log says so) before the manager gave up on it."""
    from harness.experiment.logs import read_text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "to: ERROR" in read_text(log_dir / "nnimanager.log"):
            return False
        if "Dispatcher started" in read_text(log_dir / "dispatcher.log"):
            return True
        time.sleep(poll)
    return False


def encoded(warm: WarmStart) -> bytes:
    return json.dumps(warm.data).encode()
