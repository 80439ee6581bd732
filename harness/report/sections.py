"""The report's search sections, after the learning curves: which hyperparameters mattered, parallel coordinates,
score against inference time (the Pareto front), and the ASHA assessor's rungs and stops. HTML built with page.py's
helpers; every user string escaped."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.experiment.rungs import Rungs, ordinal
from harness.report.figures import Picture
from harness.report.importance import EVALUATORS, MIN_TRIALS, Importance
from harness.report.page import cell, image, number, table
from harness.report.pareto import Point, pareto_front
from harness.report.runs import tasks

IMPORTANCE_NOTE = (f"From the trials' own records (params.json, metrics.jsonl) by Optuna's evaluators: fANOVA (a "
                   f"seeded random forest: the share of the score's variance each hyperparameter explains) and "
                   f"PED-ANOVA (how differently it is distributed among the best trials than among all). Per task, "
                   f"at least {MIN_TRIALS} scored trials; a stopped trial counts with its best score before the "
                   f"stop.")


def importance_section(found: Mapping[str, Importance | None], pictures: Mapping[str, Picture | None],
                       folder: str, runs: Sequence[Any]) -> str:
    parts = ["<h2>Which hyperparameters mattered</h2>", f"<p>{escape(IMPORTANCE_NOTE)}</p>"]
    for task in tasks(runs):
        result = found.get(task)
        parts.append(f"<h3>{escape(task)}</h3>")
        if result is None:
            parts.append(f"<p>Fewer than {MIN_TRIALS} scored trials, or nothing varied: no importance.</p>")
            continue
        rows = ["<tr>" + cell(escape(key)) + "".join(cell(f"{result.by_evaluator[name][key]:.3f}", "num")
                                                     for name in EVALUATORS) + "</tr>"
                for key in sorted(result.by_evaluator["fANOVA"], key=lambda k: -result.by_evaluator["fANOVA"][k])]
        parts.append(image(pictures.get(f"importance_{task}"), folder)
                     + table([("hyperparameter", ""), *((name, "num") for name in EVALUATORS)], rows))
    return "".join(parts)


def parallel_section(runs: Sequence[Any], pictures: Mapping[str, Picture | None], folder: str) -> str:
    parts = ["<h2>Parallel coordinates</h2><p>A line per trial through its hyperparameters to its best score "
             "(colour: the score; numbers spanning 20x or more on a log axis).</p>"]
    for task in tasks(runs):
        picture = pictures.get(f"parallel_{task}")
        parts.append(f"<h3>{escape(task)}</h3>" + (image(picture, folder) if picture else
                                                   "<p>Fewer than two scored trials, or nothing varied.</p>"))
    return "".join(parts)


def pareto_section(found: Mapping[str, Sequence[Point]], pictures: Mapping[str, Picture | None], folder: str,
                   metric: str) -> str:
    parts = ["<h2>Score against inference time</h2><p>Each trial's best score beside its final model's inference "
             "time per image (cost.json: its predictor, test-time augmentation included, on the validation images, "
             "on the device it trained on). The Pareto front holds the trials no other beats on both.</p>"]
    headers = [("trial", ""), ("model", ""), (f"best {metric}", "num"), ("ms / image", "num"),
               ("parameters", "num"), ("device", "")]
    for task, task_points in found.items():
        parts.append(f"<h3>{escape(task)}</h3>")
        if not task_points:
            parts.append("<p>No trial has a cost.json yet (it is written at the end of a run).</p>")
            continue
        front = [task_points[i] for i in pareto_front([(p.score, p.ms) for p in task_points])]
        rows = ["<tr>" + "".join([cell(escape(p.run.trial_id), title=p.run.name), cell(escape(p.run.model)),
                                  cell(number(p.score), "num score"), cell(f"{p.ms:.3f}", "num"),
                                  cell(f"{p.parameters:,}", "num"), cell(escape(str(p.run.cost.get("device"))))])
                + "</tr>" for p in front]
        parts.append(image(pictures.get(f"pareto_{task}"), folder)
                     + f"<p class=\"sub\">The front, fastest first ({len(front)} of {len(task_points)} trials):</p>"
                     + table(headers, rows))
    return "".join(parts)


def kept_now(rungs: Rungs, rung: int) -> float | None:
    """The score a newcomer needs now to continue at `rung` (the last kept place's), None while every one does."""
    scores = sorted(rungs.recorded.get(rung, {}).values(), reverse=True)
    if len(scores) < rungs.grace_period:
        return None
    keep = -(-(len(scores) + 1) // rungs.eta)
    return scores[keep - 1] * rungs.sign if keep <= len(scores) else None


def asha_section(rungs: Rungs | None, stops: Sequence[dict[str, Any]]) -> str:
    """The assessor's rungs (from <experiment>/checkpoint/asha.json) and its stops (log/assessor_stops.jsonl)."""
    if rungs is None and not stops:
        return ""
    parts = ["<h2>Early stopping</h2>"]
    if rungs is not None:
        parts.append(f"<p>ASHA, eta {rungs.eta}: at each rung a trial continues when it is in the top 1/{rungs.eta} "
                     f"(rounded up) of the trials that reached the rung before it, and the first "
                     f"{rungs.grace_period} at a rung always continue{'s' if rungs.grace_period == 1 else ''}.</p>")
        rows = []
        for rung in rungs.epochs:
            at = [s for s in stops if s.get("rung") == rung]
            # best first: the recorded scores are maximised (a minimised metric's negated), shown as reported
            scores = [v * rungs.sign for v in sorted(rungs.recorded.get(rung, {}).values(), reverse=True)]
            rows.append("<tr>" + "".join([
                cell(str(rung), "num"), cell(str(len(scores)), "num"), cell(str(len(at)), "num"),
                cell(number(scores[0]) if scores else "—", "num"), cell(number(kept_now(rungs, rung)), "num")])
                + "</tr>")
        parts.append(table([("rung (epochs)", "num"), ("trials reached it", "num"), ("stopped there", "num"),
                            ("best there", "num"), ("a newcomer needs now", "num")], rows))
    if stops:
        rows = ["<tr>" + "".join([
            cell(escape(str(s["trial"]))), cell(str(s["rung"]), "num"), cell(str(s["step"]), "num"),
            cell(number(float(s["score"])), "num"),
            cell(escape(f"{ordinal(int(s['place']))} of {s.get('of')}, top {s.get('kept')} continue")
                 if isinstance(s.get("place"), int) else "—")]) + "</tr>" for s in stops]
        parts.append(f"<h3>{len(stops)} stop{'s' if len(stops) != 1 else ''}</h3>" + table(
            [("trial", ""), ("rung", "num"), ("after epoch", "num"), ("its best there", "num"), ("place", "")], rows))
    return "".join(parts)
