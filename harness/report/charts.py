"""The report's search pictures: hyperparameter importance, parallel coordinates, score against inference time, and
the best score over time of several experiments. Drawn like figures.py's (Agg canvas, no pyplot, matplotlib
imported inside the functions)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.figures import FONT, MAX_PARAMETERS, Picture, _figure, _label, _numeric, _plain, _png, _short
from harness.report.importance import Importance
from harness.report.pareto import Point, pareto_front
from harness.report.runs import Run, param_value, score

TUNER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def importance_chart(found: Importance) -> Picture:
    """One bar per hyperparameter and evaluator, most important (by fANOVA) on top."""
    import matplotlib

    keys = sorted(found.by_evaluator["fANOVA"], key=lambda k: found.by_evaluator["fANOVA"][k])
    with matplotlib.rc_context(FONT):
        figure = _figure(8, 0.45 * len(keys) + 1.6)
        axes = figure.subplots()
        height = 0.8 / len(found.by_evaluator)
        for i, (name, values) in enumerate(found.by_evaluator.items()):
            axes.barh([k + (i - 0.5) * height for k in range(len(keys))], [values[key] for key in keys],
                      height=height, label=name, color=TUNER_COLOURS[i])
        axes.set_yticks(range(len(keys)), [_plain(key) for key in keys])
        axes.set(xlabel="importance (each evaluator's sum is 1)", xlim=(0, 1),
                 title=f"{found.task}: which hyperparameters mattered ({found.trials} trials)")
        axes.grid(alpha=0.3, axis="x")
        axes.legend(frameon=False, loc="lower right")
        return Picture(f"importance_{found.task}.png", f"hyperparameter importance of the {found.task} trials",
                       _png(figure))


def _axis_position(values: Sequence[Any]) -> tuple[list[float], list[float], list[str]]:
    """Values on a 0..1 axis: (positions, tick positions, tick labels). Numbers spanning 20x or more on a log scale,
    other numbers linearly, anything else as evenly spaced categories."""
    if _numeric(values):
        xs = [float(v) for v in values]
        log = min(xs) > 0 and max(xs) / min(xs) >= 20
        scaled = [math.log10(x) for x in xs] if log else xs
        low, high = min(scaled), max(scaled)
        span = (high - low) or 1.0
        ticks = [low, (low + high) / 2, high] if high > low else [low]
        if not log and len(set(xs)) <= 6 and all(x.is_integer() for x in xs):  # batch sizes: a tick per value
            ticks = sorted(set(xs))
        return ([(s - low) / span for s in scaled], [(t - low) / span for t in ticks],
                [f"{(10 ** t if log else t):.3g}" for t in ticks])
    categories = sorted({str(v) for v in values})
    step = 1 / max(len(categories) - 1, 1)
    return ([categories.index(str(v)) * step for v in values], [i * step for i in range(len(categories))],
            [_short(c, 14) for c in categories])


def parallel_coordinates(runs: Sequence[Run], keys: Sequence[str], metric: str, task: str) -> Picture | None:
    """One vertical axis per hyperparameter (at most MAX_PARAMETERS) and one for the score; a line per trial,
    coloured by its score (the best drawn last, on top)."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scored = sorted((run for run in runs if score(run, metric) is not None), key=lambda run: score(run, metric))
    keys = list(keys)[:MAX_PARAMETERS]
    if len(scored) < 2 or not keys:
        return None
    scores = [float(score(run, metric)) for run in scored]
    axes_values = [_axis_position([param_value(run, key) for run in scored]) for key in keys]
    axes_values.append(_axis_position(scores))
    colour = matplotlib.colormaps["viridis"]
    norm = Normalize(min(scores), max(scores) if max(scores) > min(scores) else min(scores) + 1e-9)
    with matplotlib.rc_context(FONT):
        figure = _figure(max(8.0, 1.5 * (len(keys) + 1)), 5)
        axes = figure.subplots()
        for i, value in enumerate(scores):
            axes.plot(range(len(axes_values)), [positions[0][i] for positions in axes_values],
                      color=colour(norm(value)), linewidth=1.2, alpha=0.8)
        for x, (_, ticks, labels) in enumerate(axes_values):
            axes.axvline(x, color="#444444", linewidth=0.8)
            for tick, label in zip(ticks, labels):
                axes.text(x + 0.03, tick, label, fontsize=8, va="center", color="#333333")
        axes.set_xticks(range(len(axes_values)), [_plain(k) for k in keys] + [f"best {metric}"], rotation=20)
        axes.set_yticks([])
        axes.set(xlim=(-0.2, len(axes_values) - 0.5), ylim=(-0.05, 1.05),
                 title=f"{task}: parallel coordinates ({len(scored)} trials; colour: best {metric})")
        for side in ("left", "right", "top"):
            axes.spines[side].set_visible(False)
        figure.colorbar(ScalarMappable(norm=norm, cmap=colour), ax=axes, label=f"best {metric}")
        return Picture(f"parallel_{task}.png", f"parallel coordinates of the {task} trials", _png(figure))


def pareto_chart(found: Sequence[Point], metric: str, task: str) -> Picture | None:
    """Each trial's best score against its inference time per image; the Pareto front joined and named."""
    import matplotlib

    if not found:
        return None
    front = pareto_front([(p.score, p.ms) for p in found])
    with matplotlib.rc_context(FONT):
        figure = _figure(9, 5)
        axes = figure.subplots()
        axes.scatter([p.ms for p in found], [p.score for p in found], s=30, color="#999999", label="trial")
        line = [found[i] for i in front]
        axes.step([p.ms for p in line], [p.score for p in line], where="post", color="#d62728", linewidth=1.5)
        axes.scatter([p.ms for p in line], [p.score for p in line], s=48, color="#d62728", label="Pareto front",
                     zorder=3)
        for point in line:
            axes.annotate(_label(point.run, 28), (point.ms, point.score), fontsize=8, xytext=(4, -10),
                          textcoords="offset points")
        devices = sorted({str(p.run.cost.get("device", "?")) for p in found})
        axes.set(xlabel=f"inference ms per image ({', '.join(devices)})", ylabel=f"best {metric}",
                 title=f"{task}: score against inference time ({len(found)} trials)")
        if max(p.ms for p in found) / min(p.ms for p in found) >= 20:
            axes.set_xscale("log")
        axes.grid(alpha=0.3)
        axes.legend(frameon=False, loc="lower right")
        return Picture(f"pareto_{task}.png", f"best {metric} against inference time, {task} trials", _png(figure))


def best_over_time(curves: Mapping[str, Sequence[tuple[float, float]]], tuners: Mapping[str, str], metric: str,
                   task: str) -> Picture | None:
    """The best score so far against minutes since each experiment's start, a line per experiment, one colour per
    tuner (experiments of the same tuner share it: the per-tuner curves)."""
    import matplotlib

    if not any(curves.values()):
        return None
    colours = {tuner: TUNER_COLOURS[i % len(TUNER_COLOURS)] for i, tuner in enumerate(dict.fromkeys(tuners.values()))}
    with matplotlib.rc_context(FONT):
        figure = _figure(11, 5)
        axes = figure.subplots()
        for experiment, curve in curves.items():
            if curve:
                minutes, best = zip(*[(t / 60, s) for t, s in curve])
                axes.step(minutes, best, where="post", color=colours[tuners[experiment]], linewidth=1.8,
                          label=_plain(f"{experiment} ({tuners[experiment]})"))
        axes.set(xlabel="minutes since the experiment started", ylabel=f"best {metric} so far",
                 title=f"{task}: best {metric} over time, per experiment (colour: tuner)")
        axes.grid(alpha=0.3)
        figure.legend(loc="outside right upper", frameon=False, title="experiment (tuner)")
        return Picture(f"over_time_{task}.png", f"best {metric} over time per experiment, {task}", _png(figure))
