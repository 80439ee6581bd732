"""A suite's runner: its measures chosen by name, their flags, one JSON of figures, and the tables they print.

    python -m benchmarks.trial_speed [MEASURE ...] [--device auto|cpu|cuda] [--out FILE] [each measure's flags]
    python -m benchmarks.trial_speed --report FILE     the tables of a figures file written earlier

As timm's benchmark.py has a BenchmarkRunner with a subclass per measure, a suite here is a list of Measure
subclasses: each says its name, adds its own flags, runs, and turns its figures into lines of a table. No name runs
every measure. The figures file holds one section per measure, with the machine and the date it ran on; a run
updates only the sections it measured, so measures run on different days share one file."""
from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmarks.common import ROOT, machine
from harness.atomic import write_json
from harness.train.precision import resolve_device


class Measure:
    """One figure of a suite. Subclasses set `name` and `help`, may add flags, and implement run and report."""
    name: ClassVar[str]
    help: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """This measure's own flags; name them after the measure so that measures never collide."""

    def run(self, bench: Bench) -> dict[str, Any]:
        raise NotImplementedError

    def report(self, figures: dict[str, Any]) -> list[str]:
        """Markdown lines from the figures `run` returned (also when read back from a file)."""
        raise NotImplementedError


@dataclass
class Bench:
    """What the measures of one run share: the flags, the device, a scratch folder, and the figures so far (a
    measure may build on another's: the FLOP/s measure reads the images/s of the timm comparison)."""
    args: argparse.Namespace
    device: torch.device
    scratch: Path
    figures: dict[str, Any] = field(default_factory=dict)


def parser_for(doc: str, measures: Sequence[Measure], default_out: Path) -> argparse.ArgumentParser:
    names = [measure.name for measure in measures]
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="measures: " + "; ".join(f"{m.name}: {m.help}" for m in measures))
    parser.add_argument("measures", nargs="*", metavar="MEASURE", help=f"one or more of {', '.join(names)}")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where models train (auto: cuda when present)")
    parser.add_argument("--out", type=Path, default=default_out,
                        help="the figures file: the measured sections are replaced, the others kept")
    parser.add_argument("--report", type=Path, help="print the tables of this figures file and measure nothing")
    for measure in measures:
        measure.add_arguments(parser.add_argument_group(measure.name))
    return parser


def run_suite(doc: str, measures: Sequence[Measure], argv: Sequence[str] | None, default_out: Path) -> int:
    parser = parser_for(doc, measures, default_out)
    args = parser.parse_args(argv)
    by_name = {measure.name: measure for measure in measures}
    if args.report:
        print(report(json.loads(args.report.read_text()), measures))
        return 0
    unknown = [name for name in args.measures if name not in by_name]
    if unknown or not args.measures:
        parser.error(f"name one or more measures of {', '.join(by_name)}" +
                     (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    figures = json.loads(args.out.read_text()) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as scratch:
        bench = Bench(args, resolve_device(args.device), Path(scratch), figures)
        for name in args.measures:
            started = datetime.datetime.now().isoformat(timespec="minutes")
            section = by_name[name].run(bench)
            figures[name] = {"machine": machine(bench.device), "date": started, **section}
            write_json(figures, args.out)  # after each measure: a later one that fails keeps the earlier figures
            print("\n".join(by_name[name].report(figures[name])), flush=True)
    print(f"figures: {args.out}")
    return 0


def report(figures: dict[str, Any], measures: Sequence[Measure]) -> str:
    lines: list[str] = []
    for measure in measures:
        if measure.name in figures:
            section = figures[measure.name]
            when = f", {section['date']}" if "date" in section else ""
            lines += [f"## {measure.name} ({section.get('machine', 'machine not recorded')}{when})",
                      *measure.report(section), ""]
    return "\n".join(lines)


DEFAULT_OUT = ROOT / "bench_out"
