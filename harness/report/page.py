"""The report's HTML: one file with its style inline and its pictures embedded as data: URIs, so it can be mailed
or opened anywhere. Every string that comes from the run folders (names, parameters, file names, problems) goes
through html.escape: a folder or model name is the user's text, not markup."""
from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.outputs.reading import Run, record_of
from harness.report.figures import MAX_PARAMETERS, Picture
from harness.report.runs import Experiment, best_epoch, hyperparameters, param_value, ranked, score, status, tasks

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 15px; line-height: 1.45;
       color: #1d1d1f; margin: 0 auto; padding: 1.2em 2em 3em; max-width: 1500px; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
.sub { color: #555; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 14px; }
th, td { padding: 0.35em 0.7em; border-bottom: 1px solid #e3e3e3; text-align: left; vertical-align: top;
         white-space: nowrap; }
th { background: #f3f4f6; position: sticky; top: 0; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafafa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.score { font-weight: 600; }
.run { font-size: 12px; color: #666; }
.status-succeeded { color: #176b2c; }
.status-stopped { color: #9a5b00; }
.status-running { color: #1f4fa0; }
.status-failed { color: #a11; }
.notes { background: #fff6e0; border: 1px solid #f0d48a; padding: 0.6em 1.2em; border-radius: 4px; }
.notes li { margin: 0.2em 0; word-break: break-word; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
details { margin: 0.5em 0; }
code { font-size: 13px; }
"""

MEMBERS_SHOWN = 15  # per task, before the rest is folded away

STATUS_NOTE = ("Status: <b>succeeded</b>, every planned epoch recorded; <b>stopped by the assessor at epoch N</b>, "
               "the experiment's assessor stopped it after epoch N (its stopped.json, or the assessor's "
               "log/assessor_stops.jsonl; NNI's web UI shows such a trial as USER_CANCELED); <b>stopped at epoch "
               "N</b>, stopped by another signal (<code>nnictl stop</code>, the web UI, a user) after epoch N; "
               "<b>running/incomplete</b>, fewer epochs than planned and not stopped (still training, crashed or "
               "diverged); <b>failed before first epoch</b>, no epoch recorded (or, while the experiment runs, "
               "still in its first epoch).")


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3g}"
    return str(value)


def setting(value: Any) -> str:
    """A hyperparameter's value as text: floats compactly (1e-04 stays 0.0001), lists and dicts as JSON."""
    if isinstance(value, float):
        return f"{value:.3g}"  # a tuner's 0.000687649... reads as 0.000688; the table stays narrow
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "—" if value is None else str(value)


def status_class(text: str) -> str:
    return "status-" + text.split()[0].split("/")[0]


def cell(text: str, css: str = "", title: str = "") -> str:
    """A <td> of already-escaped HTML."""
    attributes = (f' class="{css}"' if css else "") + (f' title="{escape(title)}"' if title else "")
    return f"<td{attributes}>{text}</td>"


def table(headers: Sequence[tuple[str, str]], rows: Sequence[str]) -> str:
    """headers: (text, css class); rows: '<tr>...</tr>' strings."""
    head = "".join(f'<th class="{css}">{escape(text)}</th>' if css else f"<th>{escape(text)}</th>"
                   for text, css in headers)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def dumps_text(run: Run) -> str:
    epochs = sorted({dump.epoch for dump in run.dumps})
    if not epochs:
        return "—"
    shown = ", ".join(map(str, epochs[:8])) + (", …" if len(epochs) > 8 else "")
    return f"{len(run.dumps)} (epoch{'s' if len(epochs) > 1 else ''} {shown})"


def trial_rows(runs: Sequence[Run], keys: Sequence[str], metric: str) -> list[str]:
    rows = []
    for rank, run in enumerate(ranked(runs, metric), start=1):
        best = best_epoch(run, metric)
        done = run.records[-1]["epoch"] if run.records else 0
        state = status(run)
        cells = [
            cell(str(rank), "num"),
            # The run folder's name only on hover: it would double the table's width (the members tables show it).
            cell(escape(run.trial_id), title=run.name),
            cell(escape(run.task)),
            cell(escape(state), status_class(state)),
            cell(f"{done}/{run.planned_epochs}", "num"),
            cell(number(best["epoch"]) if best else "—", "num"),
            *(cell(number(best.get(name)) if best else "—", "num score" if name == metric else "num")
              for name in ("val_acc", "val_f1")),
            cell(escape(dumps_text(run))),
            *(cell(escape(setting(param_value(run, key))), "num" if isinstance(param_value(run, key), (int, float))
                   else "") for key in keys),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return rows


def trials_section(experiment: Experiment, metric: str) -> str:
    runs = experiment.runs
    keys, constant = hyperparameters(runs)
    headers = [("#", "num"), ("trial", ""), ("task", ""), ("status", ""), ("epochs", "num"), ("best epoch", "num"),
               ("val acc", "num"), ("val macro-F1", "num"), ("dumps", ""), *((key, "") for key in keys)]
    same = ""
    if constant:
        items = ", ".join(f"<code>{escape(key)}</code> {escape(setting(value))}" for key, value in constant.items())
        same = f"<details><summary>Same in every trial ({len(constant)} settings)</summary><p>{items}</p></details>"
    return (f"<h2>Trials</h2><p>Best epoch by <b>{escape(metric)}</b>; the scores are that epoch's. Best trial first. "
            f"Hyperparameter columns: the settings that differ between trials.</p>"
            f"{table(headers, trial_rows(runs, keys, metric))}<p class=\"sub\">{STATUS_NOTE}</p>{same}")


def image(picture: Picture | None, folder: str) -> str:
    """The picture embedded in the page, with the path of its PNG beside the page in the caption."""
    if picture is None:
        return ""
    data = base64.b64encode(picture.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(picture.alt)}">'
            f'<figcaption>{escape(picture.alt)} (<a href="{escape(folder)}/{escape(picture.name)}">'
            f"{escape(folder)}/{escape(picture.name)}</a>)</figcaption></figure>")


def curves_section(experiment: Experiment, pictures: Mapping[str, Picture | None], folder: str) -> str:
    parts = ["<h2>Learning curves</h2>"]
    for task in tasks(experiment.runs):
        picture = pictures.get(f"curves_{task}")
        parts.append(f"<h3>{escape(task)}</h3>" + (image(picture, folder) if picture else
                                                   "<p>No epoch recorded yet.</p>"))
    return "".join(parts)


def hyperparameter_section(experiment: Experiment, pictures: Mapping[str, Picture | None], folder: str,
                           metric: str) -> str:
    keys, _ = hyperparameters(experiment.runs)
    head = f"<h2>Hyperparameters against the best {escape(metric)}</h2>"
    if not keys:
        return head + "<p>Every trial ran with the same settings.</p>"
    left_out = keys[MAX_PARAMETERS:]
    more = (f"<p>Not drawn ({len(left_out)} more): {escape(', '.join(left_out))}.</p>" if left_out else "")
    picture = pictures.get("hyperparameters")
    return head + (image(picture, folder) if picture else "<p>No trial has a score yet.</p>") + more


def member_rows(runs: Sequence[Run], metric: str) -> list[str]:
    dumped = [(run, dump) for run in runs for dump in run.dumps]

    def key(item: tuple[Run, Any]) -> tuple[bool, float]:
        record = record_of(item[0].records, item[1].epoch) if not item[1].tag else None
        value = record.get(metric) if record else None
        return value is None, -(value or 0.0)

    rows = []
    for run, dump in sorted(dumped, key=key):
        record = record_of(run.records, dump.epoch) if not dump.tag else None  # a re-prediction's scores are its own
        files = ("eval + valid" if dump.eval_csv and dump.valid_csv else
                 "eval only (no validation pair)" if dump.eval_csv else "valid only (no eval set)")
        name = dump.eval_csv or dump.valid_csv or ""
        rows.append("<tr>" + "".join([
            cell(f'{escape(name)}<div class="run">{escape(run.name)}</div>'),
            cell(escape(run.trial_id)),
            cell(str(dump.epoch) + escape(dump.tag), "num"),
            *(cell(number(record.get(n)) if record else "—", "num score" if n == metric else "num")
              for n in ("val_acc", "val_f1")),
            cell(escape(dump.train_acc), "num"), cell(escape(dump.train_loss), "num"), cell(escape(files))]) + "</tr>")
    return rows


def members_section(experiment: Experiment, metric: str) -> str:
    parts = ["<h2>Dumped members per task</h2><p>Every soft-CSV pair in the run folders, the candidates of "
             "<code>python -m ensemble --from</code>; scores are the epoch's validation scores from metrics.jsonl "
             "(a re-prediction, <code>-pred&lt;n&gt;</code>, has its own).</p>"]
    headers = [("soft CSV", ""), ("trial", ""), ("epoch", "num"), ("val acc", "num"), ("val macro-F1", "num"),
               ("train acc", "num"), ("train loss", "num"), ("files", "")]
    for task in tasks(experiment.runs):
        runs = [run for run in experiment.runs if run.task == task]
        rows = member_rows(runs, metric)
        parts.append(f"<h3>{escape(task)}: {len(rows)} dump{'s' if len(rows) != 1 else ''}</h3>")
        if not rows:
            parts.append("<p>No dumps yet.</p>")
            continue
        # A long search dumps hundreds of CSVs: the best few are shown, the rest a click away.
        parts.append(table(headers, rows[:MEMBERS_SHOWN]))
        if len(rows) > MEMBERS_SHOWN:
            parts.append(f"<details><summary>{len(rows) - MEMBERS_SHOWN} more {escape(task)} dumps</summary>"
                         f"{table(headers, rows[MEMBERS_SHOWN:])}</details>")
    return "".join(parts)


def selection_section(selections: Sequence[Any], pictures: Mapping[str, Picture | None], folder: str) -> str:
    metric = escape(selections[0].metric) if selections else ""
    parts = ["<h2>Ensemble selection (--select)</h2><p>What <code>python -m ensemble --from … --select --metric "
             f"{metric}</code> chooses: greedy forward selection with replacement on the validation CSVs, per task, "
             f"by validation <b>{metric}</b> (<code>--select_metric</code>); multi members vote through their "
             "marginals.</p>"]
    headers = [("member", ""), ("its task", ""), ("picks", "num"), ("weight", "num")]
    for chosen in selections:
        parts.append(f"<h3>{escape(chosen.task)}: ensemble {escape(chosen.metric)} {chosen.score:.4f}, best single "
                     f"{chosen.best_single:.4f}</h3><p class=\"sub\">{len(chosen.chosen)} of {chosen.candidates} "
                     f"candidates chosen, {chosen.rounds} picks; best single member: "
                     f"{escape(chosen.best_single_name)}</p>")
        rows = ["<tr>" + "".join([
            cell(f'{escape(member.csv)}<div class="run">{escape(member.run)}</div>'),
            cell(escape(member.task + (" (marginals)" if member.task != chosen.task else ""))),
            cell(f"{member.picks}/{chosen.rounds}", "num"), cell(f"{member.picks / chosen.rounds:.3f}", "num")])
            + "</tr>" for member in chosen.chosen]
        parts.append(table(headers, rows))
    parts.append(image(pictures.get("selection"), folder))
    return "".join(parts)


def summary(experiment: Experiment, metric: str) -> str:
    counts = Counter(status(run).split(" at ")[0] for run in experiment.runs)
    parts = [f"{counts[name]} {name}" for name in ("succeeded", "stopped by the assessor", "stopped",
                                                    "running/incomplete", "failed before first epoch") if counts[name]]
    text = f"{len(experiment.runs)} trials: {', '.join(parts)}"
    if experiment.skipped:
        text += f"; {len(experiment.skipped)} run folder{'s' if len(experiment.skipped) > 1 else ''} skipped"
    best = ranked(experiment.runs, metric)[0]
    if score(best, metric) is not None:
        text += (f". Best {metric}: {score(best, metric):.4f}, trial {best.trial_id} ({best.task}, {best.model}) "
                 f"at epoch {best_epoch(best, metric)['epoch']}")
    return escape(text) + "."


def notes_section(experiment: Experiment) -> str:
    if not experiment.notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in experiment.notes)
    return f'<div class="notes"><b>Problems found</b><ul>{items}</ul></div>'


def render(experiment: Experiment, metric: str, pictures: Mapping[str, Picture | None], figures_folder: str,
           generated: str, selections: Sequence[Any] | None = None) -> str:
    """The whole page. figures_folder: where the PNGs are, relative to the page (for the captions' links)."""
    name = experiment.path.resolve().name
    body = [
        f"<h1>Experiment {escape(name)}</h1>",
        f'<p class="sub">{escape(str(experiment.path))} · generated {escape(generated)} · score: '
        f"{escape(metric)}</p>",
        f"<p>{summary(experiment, metric)}</p>",
        notes_section(experiment),
        trials_section(experiment, metric),
        curves_section(experiment, pictures, figures_folder),
        hyperparameter_section(experiment, pictures, figures_folder, metric),
        members_section(experiment, metric),
    ]
    if selections is not None:
        body.append(selection_section(selections, pictures, figures_folder))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Experiment {escape(name)}: report</title><style>{STYLE}</style></head>\n"
            f"<body>\n{''.join(body)}\n</body></html>\n")
