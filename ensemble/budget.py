"""--inference_budget MS_PER_IMAGE: a total inference time per image for the submission's members, for contests
that limit it. A member costs its run's cost.json time (harness/train/cost.py: the final model with the run's TTA,
on the device it trained on; a dump of an earlier epoch has the same architecture, so the same time); each distinct
CSV is one model to run, counted once however many tasks it votes in or times --select picks it. Members whose run
has no cost.json cannot be counted and are left out."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ensemble.members import Member
from harness.errors import UserError
from harness.outputs.reading import COST, read_cost


def positive_ms(text: str) -> float:
    """The flag's value: a positive number of milliseconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        import argparse

        raise argparse.ArgumentTypeError(f"expected a positive number of milliseconds per image, got {text!r}")
    return value


def costs_of(members: Sequence[Member]) -> dict[Path, float | None]:
    """CSV path -> its run's milliseconds per image (None: no usable cost.json beside it)."""
    by_folder: dict[Path, float | None] = {}
    for folder in {member.path.parent for member in members}:
        cost, _ = read_cost(folder / COST)
        by_folder[folder] = float(cost["ms_per_image"]) if cost else None
    return {member.path: by_folder[member.path.parent] for member in members}


def priced(members: Sequence[Member], costs: dict[Path, float | None]) -> tuple[list[Member], str | None]:
    """(the members with a cost, a note on the ones without)."""
    known = [member for member in members if costs[member.path] is not None]
    unknown = len(members) - len(known)
    note = (f"--inference_budget: {unknown} member(s) left out, their runs have no {COST} (trained before it was "
            f"written, or not run folders)") if unknown else None
    return known, note


def nothing_fits(members: Sequence[Member], costs: dict[Path, float | None], budget: float) -> UserError:
    known = [m for m in members if costs.get(m.path) is not None]
    if not known:
        return UserError(f"--inference_budget {budget:g} ms/image: no member has a {COST} to count")
    cheapest = min(known, key=lambda m: costs[m.path])
    return UserError(f"--inference_budget {budget:g} ms/image: no member fits (the cheapest, {cheapest.name}, takes "
                     f"{costs[cheapest.path]:.3f} ms/image)")


def best_that_fit(members: Sequence[Member], costs: dict[Path, float | None], budget: float,
                  score: Callable[[Member], float | None]) -> list[Member]:
    """Without --select: the members by validation score (best first, unscored last), each kept while the total
    time of the distinct CSVs kept stays within the budget."""
    order = sorted(members, key=lambda m: (score(m) is None, -(score(m) or 0.0)))
    kept, spent, total = [], set(), 0.0
    for member in order:
        cost = costs.get(member.path)
        if cost is None:
            continue
        extra = 0.0 if member.path in spent else cost
        if total + extra <= budget:
            kept.append(member)
            spent.add(member.path)
            total += extra
    if not kept:
        raise nothing_fits(members, costs, budget)
    return kept


def total_ms(paths: set[Path], costs: dict[Path, float | None]) -> float:
    return sum(costs[path] or 0.0 for path in paths)
