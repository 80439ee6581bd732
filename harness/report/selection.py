"""The report's --select: what `python -m ensemble --from RUNS --select` would choose, computed by the ensemble
package's own functions (gather, vote_plan, Library.valid_votes, select_ensemble), so the page and the ensemble
never disagree.

This is the one module of harness/ that imports ensemble/. tests/test_layout.py forbids only harness <-> models;
ensemble/ is built on harness/, so this is an arrow pointing back up, kept to this file and imported only when
--select is given (tests/test_report.py checks that no other harness module imports ensemble)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ensemble.gathering import gather
from ensemble.library import Library
from ensemble.members import Member, merged
from ensemble.selection import select_ensemble
from ensemble.tasks import ALL_TASKS, MULTI, vote_plan
from harness.errors import UserError


@dataclass(frozen=True)
class Chosen:
    run: str        # run folder name
    csv: str        # eval soft CSV file name
    task: str       # the member's own task (a multi member votes on a per-task answer through its marginals)
    picks: int


@dataclass(frozen=True)
class TaskSelection:
    task: str
    metric: str                 # the ensemble's name: accuracy or macro_f1
    score: float                # the chosen ensemble's validation score
    best_single: float          # the best single member's
    best_single_name: str       # run/file
    candidates: int
    rounds: int                 # picks in the kept prefix
    chosen: tuple[Chosen, ...]  # most picks first
    trace: tuple[float, ...]    # the score after each round


def select(run_folders: Sequence[Path], metric: str, rounds: int = 25,
           keep: Callable[[Member], bool] | None = None) -> list[TaskSelection]:
    """Per task, the ensemble's greedy selection on the validation CSVs of the given run folders (arithmetic
    mean, as `python -m ensemble --select` by default), by `metric`, a name of the ensemble's --metric; `keep`
    chooses among the members (a benchmark's: those written by a time). A problem is the ensemble's UserError,
    prefixed '--select'."""
    try:
        members = [m for m in gather(run_folders) if keep is None or keep(m)]
        if not members:
            raise UserError("no dumped eval soft CSVs (submission{epoch}_..._soft.csv) in the run folders")
        by_task = {task: [m for m in members if m.task == task] for task in ALL_TASKS}
        plan = {task: merged(voters) for task, voters in vote_plan(by_task).items()}
        library = Library()
        library.fix_multi_classes(by_task[MULTI], combined=MULTI not in plan)
        selections = []
        for task, voters in plan.items():
            probs, labels = library.valid_votes(voters, task)
            chosen = select_ensemble(probs, labels, rounds, metric)
            order = sorted((i for i in range(len(voters)) if chosen.counts[i]), key=lambda i: -chosen.counts[i])
            selections.append(TaskSelection(
                task=task, metric=metric, score=chosen.score,
                best_single=float(chosen.single_scores.max()), best_single_name=voters[chosen.best_single].name,
                candidates=len(voters), rounds=chosen.rounds,
                chosen=tuple(Chosen(voters[i].path.parent.name, voters[i].path.name, voters[i].task,
                                    int(chosen.counts[i])) for i in order),
                trace=chosen.trace))
    except UserError as error:
        raise UserError(f"--select: {error}") from None
    return selections
