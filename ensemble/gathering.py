"""Gathering members from run folders: nni_experiments/<experiment>/<run>/ with params.json and soft CSVs.

A run's task comes from its params.json ('classification'; 'multihead' runs write 'multi' CSVs), never from its
folder name; folders without a params.json (NNI's own trials/, db/, log/) are not runs."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ensemble.members import Member
from ensemble.tasks import ALL_TASKS
from harness.data.labels import CLASSIFICATIONS, csv_task
from harness.errors import UserError
from harness.outputs.soft_csv import EVAL_NAME

PARAMS = "params.json"


@dataclass(frozen=True)
class Run:
    folder: Path
    task: str
    model: str


def read_run(params_path: Path) -> Run:
    try:
        params = json.loads(params_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{params_path}: unreadable params.json ({type(error).__name__})") from None
    if not isinstance(params, dict):
        raise UserError(f"{params_path}: expected one JSON object")
    classification = params.get("classification")
    if classification not in CLASSIFICATIONS:
        raise UserError(f"{params_path}: 'classification' is {classification!r}, expected one of "
                        f"{', '.join(CLASSIFICATIONS)}")
    # A multihead run's CSVs are 18-class ones: it votes as a multi member, on every task through its marginals.
    return Run(folder=params_path.parent, task=csv_task(classification), model=str(params.get("model", "")))


def find_runs(root: Path) -> list[Run]:
    """Every run folder under `root`: an experiment, a single run folder, or the whole nni_experiments/."""
    if not root.is_dir():
        raise UserError(f"{root}: {'not a folder' if root.exists() else 'folder not found'} (given to --from)")
    found = [p for p in sorted(root.rglob(PARAMS))
             if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if not found:
        raise UserError(f"{root}: no run folders under it (a run folder holds {PARAMS}; given to --from)")
    return [read_run(p) for p in found]


def eval_csvs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if EVAL_NAME.fullmatch(p.name))


def gather(roots: Iterable[Path], tasks: Sequence[str] | None = None,
           models: Sequence[str] | None = None) -> list[Member]:
    """The eval soft CSVs of every run under `roots` whose task and model pass the filters (None: all)."""
    runs = list({run.folder.resolve(): run for root in roots for run in find_runs(root)}.values())
    unused = sorted(set(models or ()) - {run.model for run in runs})
    if unused:
        known = ", ".join(sorted({run.model for run in runs}))
        raise UserError(f"--models: no run used {', '.join(unused)} (models found: {known})")
    return [Member(path, run.task) for run in runs
            if (tasks is None or run.task in tasks) and (models is None or run.model in models)
            for path in eval_csvs(run.folder)]


def best_per_task(members: Sequence[Member], scores: Sequence[float | None], k: int) -> list[Member]:
    """Per task, the k members with the best validation score, best first. A member without a score (no
    validation pair) ranks after every scored member of its task, so it is kept only when fewer than k are scored."""
    ranked = sorted(range(len(members)),
                    key=lambda i: (ALL_TASKS.index(members[i].task), scores[i] is None, -(scores[i] or 0.0), i))
    taken: Counter[str] = Counter()
    kept = []
    for i in ranked:
        taken[members[i].task] += 1
        if taken[members[i].task] <= k:
            kept.append(members[i])
    return kept


def count_by_task(members: Iterable[Member]) -> str:
    """'mask 12, gender 10, age 15' (tasks without members left out)."""
    counts = Counter(member.task for member in members)
    return ", ".join(f"{task} {counts[task]}" for task in ALL_TASKS if counts[task]) or "nothing"
