"""Ensemble members: which eval soft CSV, voting on which task, with what weight; and where its validation pair is.

A command-line member is PATH[:WEIGHT]; PATH may be a glob, expanded here (sorted) so that quoting it works."""
from __future__ import annotations

import glob
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.outputs.soft_csv import EVAL_PREFIX, valid_name

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Member:
    path: Path
    task: str            # the task its columns predict: mask, gender, age or multi
    weight: float = 1.0

    @property
    def name(self) -> str:
        """Short enough to print: run folder and file."""
        return f"{self.path.parent.name}/{self.path.name}"


def split_weight(argument: str) -> tuple[str, float | None]:
    """'a.csv:2' -> ('a.csv', 2.0); 'a.csv' -> ('a.csv', None). What follows the last ':' is a weight unless it is a
    path or a CSV name itself (so 'C:\\x.csv' and 'a:b.csv' stay paths); a weight must be a positive number."""
    head, colon, tail = argument.rpartition(":")
    if not colon or not head or "/" in tail or "\\" in tail or tail.lower().endswith(".csv"):
        return argument, None
    try:
        weight = float(tail)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise UserError(f"{argument}: weight '{tail}' is not a positive number (write PATH:WEIGHT, e.g. a.csv:2)")
    return head, weight


def expand(argument: str, task: str) -> list[Member]:
    """The members one command-line argument names: every file its glob matches, sorted, with its weight."""
    pattern, weight = split_weight(argument)
    if _GLOB_CHARS.search(pattern):
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        if not paths:
            raise UserError(f"{pattern}: no file matches this pattern (given to --{task})")
    else:
        paths = [Path(pattern)]
        if paths[0].is_dir():
            raise UserError(f"{pattern}: a folder, not a CSV (given to --{task}; use --from for run folders)")
        if not paths[0].exists():
            raise UserError(f"{pattern}: file not found (given to --{task})")
    return [Member(path, task, 1.0 if weight is None else weight) for path in paths]


def valid_pair(path: Path) -> Path:
    """submission3_0.9312_0.2100_soft.csv -> valid3_0.9312_0.2100_soft.csv in the same folder."""
    partner = valid_name(path.name)
    if partner is None:
        raise UserError(f"{path}: cannot find its validation CSV: the name does not start with '{EVAL_PREFIX}' "
                        f"(expected submission{{epoch}}_..._soft.csv beside valid{{epoch}}_..._soft.csv)")
    return path.with_name(partner)


def merged(members: Sequence[Member]) -> list[Member]:
    """One member per file, the weights of repeats summed (the same vote either way, read once)."""
    weights: dict[tuple[Path, str], float] = {}
    for member in members:
        weights[member.path, member.task] = weights.get((member.path, member.task), 0.0) + member.weight
    return [Member(path, task, weight) for (path, task), weight in weights.items()]
