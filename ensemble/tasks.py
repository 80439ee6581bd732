"""The mask contest's tasks: their class counts, and how an 18-class "multi" prediction splits into per-task ones.

multi = mask*6 + gender*3 + age, so a multi class c has mask c // 6, gender (c // 3) % 2 and age c % 3.
A plain single-label contest has only the multi task, with any number of classes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

from harness.data.labels import TASKS, missing_tasks, multi_label, split_multi, task_marginal
from harness.errors import UserError

MULTI = "multi"
MULTI_CLASSES = TASKS[MULTI]
TASK_CLASSES: dict[str, int] = {task: classes for task, classes in TASKS.items() if task != MULTI}
ALL_TASKS: tuple[str, ...] = (*TASK_CLASSES, MULTI)

T = TypeVar("T")


def labels_for_task(labels: np.ndarray, source: str, task: str) -> np.ndarray:
    """Labels of `source` seen as labels of `task`: multi classes are decoded, a task's own labels pass through."""
    labels = np.asarray(labels)
    if source == task:
        return labels
    mask, gender, age = split_multi(labels)
    return {"mask": mask, "gender": gender, "age": age}[task]


def probs_for_task(probs: np.ndarray, source: str, task: str) -> np.ndarray:
    """Probabilities of `source` seen as a vote on `task`: for multi, the marginal P(task = j), the sum of the
    multi classes whose `task` label is j."""
    return probs if source == task else task_marginal(probs, task)


def answer_from_tasks(votes: Mapping[str, np.ndarray]) -> np.ndarray:
    """The submission's class from each task's vote: mask*6 + gender*3 + age."""
    return multi_label(*(np.asarray(votes[task]) for task in ("mask", "gender", "age")))


def vote_plan(groups: Mapping[str, Sequence[T]]) -> dict[str, list[T]]:
    """Which inputs vote on which answer.

    With any per-task input the answer is built from mask, gender and age, and every multi input joins each of the
    three votes through its marginals. With multi inputs only, they vote on the multi class directly (their argmax,
    not the marginals': the joint prediction keeps what the marginals lose)."""
    multi = list(groups.get(MULTI, ()))
    own = {task: list(groups.get(task, ())) for task in TASK_CLASSES}
    if not any(own.values()):
        if not multi:
            raise UserError("no input CSVs: give --mask/--gender/--age, --multi, or --from run folders")
        return {MULTI: multi}
    missing = missing_tasks(task for task, members in groups.items() if members)
    if missing:
        raise UserError(f"no predictions for task '{missing[0]}': give --{missing[0]} or --multi CSVs "
                        f"(or --from runs of that task)")
    return {task: members + multi for task, members in own.items()}
