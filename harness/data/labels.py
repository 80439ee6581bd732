"""Label rules of the mask contest, as pure functions, and the registry of tasks keyed by search-space names.

mask: wear (mask1..mask5) = 0, incorrect = 1, not wear (normal) = 2; gender: male = 0, female = 1;
age: under 30 = 0, 30 to 59 = 1, 60 and over = 2; multi = mask*6 + gender*3 + age (18 classes).
(The original contest code sent 59-year-olds to class 2: a bug, not the contest's rule.)"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from harness.errors import UserError

# Classes per task on the mask contest. A single-label data set has one task, 'multi', with its own class count.
TASKS: dict[str, int] = {"mask": 3, "gender": 2, "age": 3, "multi": 18}
# The search-space key 'classification': the heads of the model it trains, in order. 'multihead' is one backbone
# with a mask, a gender and an age head (loss: the sum of the heads' losses); its soft CSVs are 18-class ones (the
# outer product of the heads' probabilities, see joint_probs), so the ensemble reads it like a 'multi' run.
CLASSIFICATIONS: dict[str, tuple[str, ...]] = {**{task: (task,) for task in TASKS},
                                               "multihead": ("mask", "gender", "age")}

MASK_STEMS: dict[str, int] = {**{f"mask{i}": 0 for i in range(1, 6)}, "incorrect_mask": 1, "normal": 2}
GENDERS: dict[str, int] = {"male": 0, "female": 1}
CLASS_NAMES: dict[str, list[str]] = {
    "mask": ["wear", "incorrect", "not wear"],
    "gender": ["male", "female"],
    "age": ["<30", "30-59", ">=60"],
}
CLASS_NAMES["multi"] = [f"{m}/{g}/{a}" for m in CLASS_NAMES["mask"] for g in CLASS_NAMES["gender"]
                        for a in CLASS_NAMES["age"]]


def mask_label(stem: str) -> int:
    """'mask3' -> 0, 'incorrect_mask' -> 1, 'normal' -> 2 (the file name without its extension)."""
    try:
        return MASK_STEMS[stem]
    except KeyError:
        raise UserError(f"image name {stem!r} is not a mask state: expected one of "
                        f"{', '.join(MASK_STEMS)}") from None


def gender_label(gender: str, where: str = "") -> int:
    """where: the file and row it comes from, for the message."""
    try:
        return GENDERS[gender.strip().lower()]
    except (KeyError, AttributeError):
        raise UserError(f"{where + ': ' if where else ''}gender {gender!r} is not male or female") from None


OLD_AGE = 60  # the contest's first age of the oldest class; validation always keeps it
AGE_TASKS = ("age", "multi")  # the tasks whose labels depend on the age


def age_label(age: int, old_age: int = OLD_AGE) -> int:
    return 0 if age < 30 else 1 if age < old_age else 2


def age_labels(ages: np.ndarray, old_age: int = OLD_AGE) -> np.ndarray:
    """old_age other than 60 is for training labels only (`--old_age`: several top teams trained with 58, since
    photos of 58- and 59-year-olds look like 60+ and the 60+ class is the rarest)."""
    return np.digitize(ages, [30, old_age]).astype(np.int64)


def multi_label(mask: np.ndarray | int, gender: np.ndarray | int, age: np.ndarray | int) -> np.ndarray | int:
    return mask * 6 + gender * 3 + age


def split_multi(multi: np.ndarray | int) -> tuple:
    """The inverse of multi_label: (mask, gender, age)."""
    return multi // 6, (multi // 3) % 2, multi % 3


def task_marginal(probs: np.ndarray, task: str) -> np.ndarray:
    """P(task = j) of 18-class probabilities (multi = mask*6 + gender*3 + age): the sum of the multi classes whose
    `task` label is j."""
    position = {"mask": 0, "gender": 1, "age": 2}[task]
    of_class = split_multi(np.arange(probs.shape[1]))[position]
    return probs @ np.eye(TASKS[task])[of_class]


def csv_task(classification: str) -> str:
    """The task a run's soft CSVs predict: its one head's, or 'multi' (18 classes) for a model with several heads."""
    heads = CLASSIFICATIONS[classification]
    return heads[0] if len(heads) == 1 else "multi"


def missing_tasks(present: Iterable[str]) -> list[str]:
    """The tasks a submission still lacks a vote on, given the tasks of the soft CSVs at hand: none when there is no
    per-task CSV at all (multi CSVs vote on the answer directly) or when a multi CSV is there (it votes on every task
    through its marginals); otherwise each of mask, gender and age needs a CSV of its own."""
    present = set(present)
    per_task = [task for task in TASKS if task != "multi"]
    if "multi" in present or not present & set(per_task):
        return []
    return [task for task in per_task if task not in present]


def joint_probs(mask: np.ndarray, gender: np.ndarray, age: np.ndarray) -> np.ndarray:
    """[N, 18] probabilities of multi = mask*6 + gender*3 + age from three heads' [N, 3], [N, 2], [N, 3]: the heads
    taken as independent, P(m, g, a) = P(m) P(g) P(a). Its marginals are exactly the heads' probabilities (so the
    ensemble's multi marginals give each task its head's vote) and its argmax is the heads' argmaxes combined."""
    joint = mask[:, :, None, None] * gender[:, None, :, None] * age[:, None, None, :]
    return joint.reshape(len(mask), -1)  # C order: index m*6 + g*3 + a
