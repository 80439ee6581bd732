"""python -m harness.report EXPERIMENT_DIR [-o OUTPUT] [--metric val_acc|val_f1] [--select]
                             [--select_metric macro_f1|accuracy]

Writes one self-contained HTML page about an experiment's trials (pictures embedded), and the same pictures as
PNGs in a figures/ folder beside it. Default: EXPERIMENT_DIR/report/report.html. Nothing is written inside a run
folder, and every file appears whole or not at all."""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import atomic_open
from harness.cli import run_cli
from harness.errors import UserError
from harness.metrics import DEFAULT_SELECTION_METRIC, SELECTION_METRICS
from harness.outputs.reading import PARAMS
from harness.report.runs import METRIC_NAMES, hyperparameters, read_experiment, tasks

PROG = "python -m harness.report"
FIGURES = "figures"
# The report's own picture names: only these are ever removed from the figures folder (stale ones of a task or
# a --select that this report no longer has).
OWN_PICTURE = re.compile(r"(curves_\w+|hyperparameters|selection)\.png")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, metavar="EXPERIMENT_DIR",
                        help="an experiment's folder, nni_experiments/<experiment id> (its run folders hold "
                             "params.json)")
    parser.add_argument("-o", "--output", type=Path, metavar="OUTPUT",
                        help="the HTML page to write (default: EXPERIMENT_DIR/report/report.html); the PNGs go "
                             "to figures/ beside it")
    parser.add_argument("--metric", choices=METRIC_NAMES, default="val_acc",
                        help="the score that picks each trial's best epoch and ranks trials (default val_acc, "
                             "trial.py's default)")
    parser.add_argument("--select", action="store_true",
                        help="add the ensemble's choice: what `python -m ensemble --from EXPERIMENT_DIR --select` "
                             "picks per task on the validation CSVs (Caruana's selection, by --select_metric)")
    parser.add_argument("--select_metric", choices=tuple(SELECTION_METRICS), default=DEFAULT_SELECTION_METRIC,
                        help=f"the validation score --select maximises: the names and default "
                             f"({DEFAULT_SELECTION_METRIC}) of the ensemble's --metric"),
    parser.add_argument("--rounds", type=positive_int, default=25, metavar="N",
                        help="selection rounds for --select (default 25, as the ensemble's)")
    return parser


def check_output(output: Path) -> None:
    """The report never writes into a run folder: the ensemble gathers those, and trials write there."""
    if output.is_dir():
        raise UserError(f"{output}: a folder; -o names the HTML file to write, e.g. {output / 'report.html'}")
    folder = output.resolve().parent
    run = next((p for p in (folder, *folder.parents) if (p / PARAMS).is_file()), None)
    if run is not None:
        raise UserError(f"{output}: inside the run folder {run} (it holds {PARAMS}); the report never writes into "
                        f"run folders: choose another -o")


def write_pictures(pictures: dict, folder: Path) -> list[Path]:
    written = []
    for picture in pictures.values():
        if picture is not None:
            with atomic_open(folder / picture.name, "wb") as handle:
                handle.write(picture.png)
            written.append(folder / picture.name)
    if folder.is_dir():
        for stale in folder.iterdir():
            if OWN_PICTURE.fullmatch(stale.name) and stale not in written:
                stale.unlink(missing_ok=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = args.output or args.experiment / "report" / "report.html"
    experiment = read_experiment(args.experiment)  # first: its errors say more than check_output's
    check_output(output)
    for note in experiment.notes:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    selections = None
    if args.select:
        from harness.report.selection import select  # the ensemble package, only when asked for

        selections = select([run.folder for run in experiment.runs], args.select_metric, args.rounds)

    from harness.report.figures import all_pictures  # matplotlib: only once the inputs were read
    from harness.report.page import render

    keys, _ = hyperparameters(experiment.runs)
    pictures = all_pictures(experiment.runs, tasks(experiment.runs), keys, args.metric, selections or ())
    written = write_pictures(pictures, output.parent / FIGURES)
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    html = render(experiment, args.metric, pictures, FIGURES, generated, selections)
    with atomic_open(output, "w", encoding="utf-8") as handle:
        handle.write(html)
    print(f"wrote {output} ({len(experiment.runs)} trials, {len(written)} pictures, also in "
          f"{output.parent / FIGURES})")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
