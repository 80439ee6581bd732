"""The report's pictures as PNG bytes, drawn with matplotlib's Agg canvas on Figure objects (no pyplot: no global
state, no display needed). matplotlib is imported inside the functions, so reading runs and testing the page
without pictures never pays for it."""
from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.report.runs import Run, param_value, ranked, score

TASK_COLOURS = {"mask": "#1f77b4", "gender": "#d62728", "age": "#2ca02c", "multi": "#9467bd"}
LABELLED = 10         # trials named in a learning-curve legend; the others are drawn thin and grey
MAX_PARAMETERS = 12   # hyperparameter panels; more would shrink each below reading size
COLUMNS = 4
FONT = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10}


@dataclass(frozen=True)
class Picture:
    name: str   # file name in the figures folder
    alt: str    # what it shows, for the <img> alt text
    png: bytes


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # no version stamp: same runs, same bytes
    return buffer.getvalue()


def _plain(text: str) -> str:
    """matplotlib reads $...$ as mathematics; names are plain text."""
    return text.replace("$", r"\$")


def _label(run: Run, width: int = 36) -> str:  # standalone trial ids alone are 20 characters
    text = f"{run.trial_id} {run.model}"
    return _plain(text if len(text) <= width else text[: width - 1] + "…")


def learning_curves(runs: Sequence[Run], task: str, metric: str) -> Picture:
    """Per epoch: the validation metric (dots: dumped epochs, x: the last epoch of a stopped run) and the train
    (solid) and validation (dashed) losses, one colour per trial; the best LABELLED trials are named."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(FONT):
        figure = _figure(13, 4.8)
        score_axes, loss_axes = figure.subplots(1, 2)
        colours = matplotlib.colormaps["tab10"]
        for i, run in enumerate(ranked(runs, metric)):
            if not run.records:
                continue
            named = i < LABELLED
            style = {"color": colours(i % 10), "linewidth": 1.8} if named else {"color": "#bbbbbb", "linewidth": 0.8}
            label = _label(run) if named else None
            epochs = [r["epoch"] for r in run.records]
            values = [math.nan if r.get(metric) is None else r[metric] for r in run.records]
            score_axes.plot(epochs, values, label=label, **style)
            dumped = [(e, v) for e, v, r in zip(epochs, values, run.records) if r.get("dumped")]
            if dumped:
                score_axes.plot(*zip(*dumped), linestyle="none", marker="o", markersize=5, color=style["color"])
            if run.stopped is not None:
                score_axes.plot(epochs[-1], values[-1], marker="x", markersize=9, color=style["color"])
            loss_axes.plot(epochs, [r.get("train_loss") for r in run.records], **style)
            loss_axes.plot(epochs, [math.nan if r.get("val_loss") is None else r["val_loss"] for r in run.records],
                           linestyle="--", **style)
        score_axes.set(title=f"{task}: validation {metric} (dots: dumped epochs, x: stopped)", xlabel="epoch",
                       ylabel=metric)
        loss_axes.set(title=f"{task}: loss (solid: train, dashed: validation)", xlabel="epoch", ylabel="loss")
        for axes in (score_axes, loss_axes):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.grid(alpha=0.3)
        if score_axes.get_legend_handles_labels()[0]:
            figure.legend(loc="outside right upper", title="trial, best first", frameon=False)
        return Picture(f"curves_{task}.png", f"learning curves of the {task} trials", _png(figure))


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _jitter(key: str, index: int) -> float:
    """A small fixed offset per point, so trials with the same category do not hide each other; the same every
    time (a hash of the key and the point), so a redrawn report does not move its dots."""
    return (zlib.crc32(f"{key}:{index}".encode()) % 1000 / 1000 - 0.5) * 0.3


def _short(value: Any, width: int = 20) -> str:  # the search space's model names (15 to 16 characters) whole
    text = str(value)
    return _plain(text if len(text) <= width else text[: width - 1] + "…")


def hyperparameters(runs: Sequence[Run], keys: Sequence[str], metric: str) -> Picture | None:
    """One panel per hyperparameter (at most MAX_PARAMETERS): each trial's best score against its value, coloured
    by task. Numbers spanning 20x or more (learning rates) get a log axis, a few whole numbers (batch sizes) a tick
    each, other numbers three short ticks; other values are categories."""
    import matplotlib
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    scored = [run for run in runs if score(run, metric) is not None]
    keys = list(keys)[:MAX_PARAMETERS]
    if not scored or not keys:
        return None
    columns = min(COLUMNS, len(keys))
    rows = math.ceil(len(keys) / columns)
    with matplotlib.rc_context(FONT):
        figure = _figure(3.4 * columns + 1.2, 3.1 * rows)
        grid = figure.subplots(rows, columns, squeeze=False)
        for axes in grid.flat[len(keys):]:
            axes.set_visible(False)
        seen: set[str] = set()
        for axes, key in zip(grid.flat, keys):
            values = [param_value(run, key) for run in scored]
            if _numeric(values):
                xs = [float(v) for v in values]
                positive = [x for x in xs if x > 0]
                if len(positive) == len(xs) and max(xs) / min(xs) >= 20:
                    axes.set_xscale("log")
                elif len(set(xs)) <= 6 and all(x.is_integer() for x in xs):  # batch sizes, epochs: the values
                    axes.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
                else:  # a linear span of rates: few short ticks (the default crowds 0.0010 ... 0.0035 together)
                    axes.xaxis.set_major_locator(MaxNLocator(nbins=3))
                    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            else:
                categories = sorted({str(v) for v in values})
                xs = [categories.index(str(v)) + _jitter(key, i) for i, v in enumerate(values)]
                axes.set_xticks(range(len(categories)), [_short(c) for c in categories])
                axes.set_xlim(-0.6, len(categories) - 0.4)
                if len(categories) > 3 or max(len(c) for c in categories) > 8:
                    axes.tick_params(axis="x", labelrotation=35)
                    for label in axes.get_xticklabels():
                        label.set_horizontalalignment("right")
            for x, run in zip(xs, scored):
                label = run.task if run.task not in seen else None
                seen.add(run.task)
                axes.scatter(x, score(run, metric), s=36, color=TASK_COLOURS.get(run.task, "black"), alpha=0.8,
                             label=label, edgecolors="white", linewidths=0.5)
            axes.set_title(key)
            axes.grid(alpha=0.3)
        for axes in grid[:, 0]:
            axes.set_ylabel(f"best {metric}")
        figure.legend(loc="outside right upper", title="task", frameon=False)
        return Picture("hyperparameters.png", f"each hyperparameter against the best {metric} of every trial",
                       _png(figure))


def selection_traces(selections: Sequence[Any]) -> Picture | None:
    """The ensemble's validation score after each selection round, per task (selection.TaskSelection); the
    marker is the kept prefix."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    if not selections:
        return None
    with matplotlib.rc_context(FONT):
        figure = _figure(8, 3.8)
        axes = figure.subplots()
        for chosen, dashes in zip(selections, ("-", "--", ":", "-.")):
            rounds = range(1, len(chosen.trace) + 1)
            # Tasks often reach the same scores: a line style each keeps a hidden line visible.
            line, = axes.plot(rounds, chosen.trace, dashes, color=TASK_COLOURS.get(chosen.task), label=chosen.task,
                              linewidth=2)
            axes.plot(chosen.rounds, chosen.score, marker="o", markersize=8, color=line.get_color())
        axes.set(title="ensemble selection: validation score after each round (dot: rounds kept)", xlabel="round",
                 ylabel=selections[0].metric)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(title="task", frameon=False)
        return Picture("selection.png", "ensemble selection score per round and task", _png(figure))


def all_pictures(runs: Sequence[Run], task_list: Sequence[str], keys: Sequence[str], metric: str,
                 selections: Sequence[Any] = ()) -> dict[str, Picture | None]:
    """Every picture of the page by its place: 'curves_<task>', 'hyperparameters', 'selection'."""
    pictures: dict[str, Picture | None] = {}
    for task in task_list:
        of_task = [run for run in runs if run.task == task]
        pictures[f"curves_{task}"] = (learning_curves(of_task, task, metric)
                                      if any(run.records for run in of_task) else None)
    pictures["hyperparameters"] = hyperparameters(runs, keys, metric)
    pictures["selection"] = selection_traces(selections)
    return pictures

