"""Score against cost: each trial's best score beside its final model's inference time per image (cost.json), and
the Pareto front, the trials no other trial beats on both (as high a score, as little time, one of them strictly).
Pure functions: nothing here plots or reads files."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.report.runs import Run, score


@dataclass(frozen=True)
class Point:
    run: Run
    score: float
    ms: float          # inference milliseconds per image
    parameters: int


def points(runs: Sequence[Run], metric: str) -> list[Point]:
    """The runs that have both a score and a cost.json."""
    return [Point(run, float(score(run, metric)), float(run.cost["ms_per_image"]), int(run.cost["parameters"]))
            for run in runs if run.cost is not None and score(run, metric) is not None]


def pareto_front(pairs: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (score, ms) pairs on the front (higher score, lower ms), fastest first; of equal pairs the
    first is kept."""
    order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1], -pairs[i][0], i))
    front, best = [], float("-inf")
    for i in order:
        if pairs[i][0] > best:
            front.append(i)
            best = pairs[i][0]
    return front
