"""Gathering members from run folders (read by harness.outputs.reading): nni_experiments/<experiment>/<run>/.

A run's task comes from its params.json ('classification'; 'multihead' runs write 'multi' CSVs), never from its
folder name; folders without a params.json (NNI's own trials/, db/, log/) are not runs."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ensemble.members import Member
from ensemble.tasks import ALL_TASKS
from harness.errors import UserError
from harness.outputs.reading import Run, find_runs, read_dumps, read_run
from harness.outputs.soft_csv import EVAL_NAME


def eval_csvs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if EVAL_NAME.fullmatch(p.name))


REFIT_MODES = ("replace", "add", "ignore")


def refit_epoch(run: Run) -> int | None:
    """The epoch of its source that a refit run (trial.py --refit) trained for; None for any other run."""
    validation = run.params.get("validation")
    epoch = validation.get("epoch") if isinstance(validation, dict) and run.params.get("refit") else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def replaced_csvs(runs: Sequence[Run]) -> set[Path]:
    """The source CSVs that refits replace: each refit's source's own eval CSV of the refit's epoch."""
    replaced = set()
    for run in runs:
        epoch = refit_epoch(run)
        if epoch is None:
            continue
        source = Path(str(run.params["refit"]))
        replaced |= {source.resolve() / dump.eval_csv for dump in read_dumps(source) if source.is_dir()
                     and dump.epoch == epoch and not dump.tag and dump.eval_csv}
    return replaced


def gather(roots: Iterable[Path], tasks: Sequence[str] | None = None,
           models: Sequence[str] | None = None, refit: str = "replace") -> list[Member]:
    """The eval soft CSVs of every run under `roots` whose task and model pass the filters (None: all). refit:
    a refit run's CSV replaces its source's of the same epoch, joins it, or is left out."""
    folders = {folder.resolve(): folder for root in roots for folder in find_runs(root)}
    runs = [read_run(folder) for folder in folders.values()]
    if refit == "ignore":
        runs = [run for run in runs if refit_epoch(run) is None]
    replaced = replaced_csvs(runs) if refit == "replace" else set()
    unused = sorted(set(models or ()) - {run.model for run in runs})
    if unused:
        known = ", ".join(sorted({run.model for run in runs}))
        raise UserError(f"--models: no run used {', '.join(unused)} (models found: {known})")
    return [Member(path, run.csv_task) for run in runs
            if (tasks is None or run.csv_task in tasks) and (models is None or run.model in models)
            for path in eval_csvs(run.folder) if path.resolve() not in replaced]


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
