"""`python -m harness.report EXP_A EXP_B ...`: several experiments side by side on one page, the comparison NNI's
web UI cannot make (one `nnictl view` per port). From each experiment's run folders, as the one-experiment report,
and its tuner and assessor from NNI's profile of it (<experiment>/db/nni.sqlite, table ExperimentProfile: the config
NNI ran, read-only; 'unknown' without one).

Best score over time uses each epoch's `ended_at` in metrics.jsonl (runs written before it existed: params.json's
modification time plus the epochs' seconds), counted from the experiment's start in NNI's profile (else its first
trial's start)."""
from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from harness.outputs.reading import PARAMS, Run
from harness.report.figures import Picture
from harness.report.page import cell, document, image, number, setting, table
from harness.report.runs import Experiment, best_epoch, hyperparameters, param_value, ranked, score, status, tasks

PROFILE = Path("db") / "nni.sqlite"
SIDE_BY_SIDE = 5  # best trials shown per experiment
MAX_EXPERIMENTS = 8


@dataclass(frozen=True)
class Side:
    experiment: Experiment
    search: str            # 'TPE + Asha', from NNI's profile
    source: str            # where `search` was read
    started: float | None  # unix seconds


def algorithm(spec: Any) -> str | None:
    """A tuner's or assessor's name from NNI's config: its builtin name, or its class's."""
    if not isinstance(spec, dict):
        return None
    name = spec.get("name") or str(spec.get("className", "")).rsplit(".", 1)[-1]
    return str(name) if name else None


def profile(experiment_dir: Path) -> dict[str, Any] | None:
    """NNI's latest profile of the experiment ({'params': config, 'startTime': ms}); None without one."""
    path = Path(experiment_dir) / PROFILE
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT params, startTime FROM ExperimentProfile ORDER BY revision DESC "
                                     "LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    try:
        params = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return {"params": params if isinstance(params, dict) else {},
            "startTime": row[1] if isinstance(row[1], (int, float)) else None}


def search_of(experiment_dir: Path) -> tuple[str, str, float | None]:
    """(tuner [+ assessor], where it was read, the start in unix seconds or None)."""
    found = profile(experiment_dir)
    if found is None:
        return "unknown", f"no {PROFILE} in the experiment folder", None
    config = found["params"]
    tuner = algorithm(config.get("tuner")) or algorithm(config.get("advisor")) or "unknown"
    assessor = algorithm(config.get("assessor"))
    start = found["startTime"] / 1000 if found["startTime"] else None
    return tuner + (f" + {assessor}" if assessor else ""), f"NNI's profile ({PROFILE})", start


def epoch_times(run: Run) -> list[float]:
    """Unix time at which each recorded epoch ended."""
    times, fallback = [], None
    for record in run.records:
        ended = record.get("ended_at")
        try:
            times.append(datetime.datetime.fromisoformat(ended).timestamp())
            continue
        except (TypeError, ValueError):
            pass
        if fallback is None:
            fallback = (run.folder / PARAMS).stat().st_mtime
        fallback += float(record.get("seconds") or 0.0)
        times.append(fallback)
    return times


def start_of(side: Side) -> float | None:
    if side.started is not None:
        return side.started
    starts = [times[0] - float(run.records[0].get("seconds") or 0.0)
              for run in side.experiment.runs if (times := epoch_times(run))]
    return min(starts, default=None)


def curve(side: Side, metric: str, task: str) -> list[tuple[float, float]]:
    """(seconds since the start, the best score of any epoch so far), one point per improvement and one at the last
    epoch (the line runs on to where the experiment's records end)."""
    start = start_of(side)
    events = sorted((t, record.get(metric)) for run in side.experiment.runs if run.task == task
                    for t, record in zip(epoch_times(run), run.records)
                    if isinstance(record.get(metric), (int, float)))
    points, best = [], None
    for when, value in events:
        if best is None or value > best:
            best = value
            points.append((when - start, value))
    if points and events[-1][0] - start > points[-1][0]:
        points.append((events[-1][0] - start, best))
    return points


def read_side(experiment: Experiment) -> Side:
    search, source, started = search_of(experiment.path)
    return Side(experiment, search, source, started)


def summary_rows(sides: Sequence[Side], metric: str) -> list[str]:
    rows = []
    for side in sides:
        runs = side.experiment.runs
        best = ranked(runs, metric)[0]
        stopped = sum(status(run).startswith("stopped") for run in runs)
        task = best.task
        reached = next((t for t, value in curve(side, metric, task) if value == score(best, metric)), None)
        rows.append("<tr>" + "".join([
            cell(escape(side.experiment.path.resolve().name), title=str(side.experiment.path)),
            cell(escape(side.search)), cell(escape(side.source)), cell(str(len(runs)), "num"),
            cell(str(stopped), "num"), cell(str(sum(len(run.records) for run in runs)), "num"),
            cell(number(score(best, metric)), "num score"), cell(escape(best.trial_id)),
            cell(f"{reached / 60:.1f}" if reached is not None else "—", "num")]) + "</tr>")
    return rows


def trial_text(run: Run, metric: str, keys: Sequence[str]) -> str:
    best = best_epoch(run, metric)
    settings = ", ".join(f"{key} {setting(param_value(run, key))}" for key in keys
                         if param_value(run, key) is not None)
    cost = f", {run.cost['ms_per_image']:.2f} ms/img" if run.cost else ""
    return (f"<b>{number(score(run, metric))}</b> {escape(run.trial_id)} (epoch {best['epoch'] if best else '—'}"
            f"{escape(cost)})<div class=\"run settings\">{escape(settings)}</div>")


def side_by_side(sides: Sequence[Side], metric: str, task: str) -> str:
    """The best SIDE_BY_SIDE trials of the task in each experiment, rank by rank."""
    keys, _ = hyperparameters([run for side in sides for run in side.experiment.runs])
    columns = [[run for run in ranked(side.experiment.runs, metric) if run.task == task
                and score(run, metric) is not None][:SIDE_BY_SIDE] for side in sides]
    rows = ["<tr>" + cell(str(rank + 1), "num") + "".join(
        cell(trial_text(column[rank], metric, keys) if rank < len(column) else "—") for column in columns) + "</tr>"
        for rank in range(max(map(len, columns), default=0))]
    headers = [("#", "num"), *((f"{side.experiment.path.resolve().name} ({side.search})", "") for side in sides)]
    return table(headers, rows)


def render_comparison(sides: Sequence[Side], metric: str, pictures: dict[str, Picture | None], folder: str,
                      generated: str) -> str:
    names = [side.experiment.path.resolve().name for side in sides]
    body = [f"<h1>{len(sides)} experiments: {escape(', '.join(names))}</h1>",
            f'<p class="sub">generated {escape(generated)} · score: {escape(metric)} · one report per experiment: '
            f"<code>python -m harness.report EXPERIMENT_DIR</code></p>",
            "<h2>The experiments</h2>",
            table([("experiment", ""), ("tuner", ""), ("read from", ""), ("trials", "num"), ("stopped", "num"),
                   ("epochs trained", "num"), (f"best {metric}", "num"), ("by trial", ""),
                   ("reached after (min)", "num")], summary_rows(sides, metric)),
            "<h2>Best score over time</h2><p>Per task, the best epoch of any trial so far against minutes since "
            "each experiment started; one colour per tuner, so experiments of the same tuner read as its curves."
            "</p>"]
    all_runs = [run for side in sides for run in side.experiment.runs]
    for task in tasks(all_runs):
        body.append(f"<h3>{escape(task)}</h3>" + image(pictures.get(f"over_time_{task}"), folder))
    body.append(f"<h2>The best trials side by side</h2><p>The {SIDE_BY_SIDE} best of each experiment per task, with "
                f"the settings that differ between any of their trials.</p>")
    for task in tasks(all_runs):
        body.append(f"<h3>{escape(task)}</h3>" + side_by_side(sides, metric, task))
    return document(f"Comparison: {', '.join(names)}", body)


def comparison_pictures(sides: Sequence[Side], metric: str) -> dict[str, Picture | None]:
    from harness.report.charts import best_over_time

    names = {side.experiment.path.resolve().name: side for side in sides}
    all_runs = [run for side in sides for run in side.experiment.runs]
    return {f"over_time_{task}": best_over_time({name: curve(side, metric, task) for name, side in names.items()},
                                                {name: side.search for name, side in names.items()}, metric, task)
            for task in tasks(all_runs)}
