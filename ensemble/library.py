"""The library of models (Caruana's term): every member's eval and validation soft CSVs, read once, checked against
its task's class count and aligned to one row order, then seen as a vote on one task."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensemble.alignment import aligned
from ensemble.members import Member, valid_pair
from ensemble.selection import METRICS
from ensemble.tasks import MULTI_CLASSES, TASK_CLASSES, labels_for_task, probs_for_task
from harness.errors import UserError
from harness.outputs.soft_csv import SoftCsv, read_soft_csv

# (classes, why) that multi CSVs must have; None until the multi CSVs' role is known.
MultiRule = tuple[int, str] | None


def multi_rule(multi: Sequence[SoftCsv], combined: bool) -> MultiRule:
    """Multi CSVs joined with per-task ones must be the mask contest's 18 classes; alone, they must agree."""
    if combined:
        return MULTI_CLASSES, (f"multi CSVs combined with mask/gender/age ones need {MULTI_CLASSES} "
                               "(mask*6 + gender*3 + age)")
    if multi:
        return multi[0].num_classes, f"{multi[0].path} has {multi[0].num_classes}: all multi CSVs need the same classes"
    return None


def check_classes(soft: SoftCsv, task: str, rule: MultiRule = None) -> None:
    if task in TASK_CLASSES:
        rule = TASK_CLASSES[task], f"a {task} CSV needs {TASK_CLASSES[task]}"
    if rule and soft.num_classes != rule[0]:
        raise UserError(f"{soft.path}: {soft.num_classes} class columns, but {rule[1]}")


def recorded_validation(member: Member) -> dict[str, Any] | None:
    """The 'validation' entry of the params.json beside a member's CSVs (trial.py writes it), if there is one."""
    try:
        recorded = json.loads((member.path.parent / "params.json").read_text()).get("validation")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def validation_label(recorded: dict[str, Any] | None, images: int) -> str:
    """'2-fold out-of-fold predictions of 168 images' / 'a holdout of 20% of the people (seed 42), 35 images'."""
    if recorded and recorded.get("scheme") == "kfold":
        return f"{recorded.get('folds')}-fold out-of-fold predictions of {images} images"
    if recorded and recorded.get("scheme") == "holdout":
        return (f"a holdout of {recorded.get('val_ratio', 0):.0%} of the people (seed {recorded.get('seed')}), "
                f"{images} images")
    return f"{images} images"


def check_same_validation(member: Member, ids: pd.Index, first: Member, first_ids: pd.Index) -> None:
    """Selection scores members on one image set: a holdout member and a K-fold one (or holdouts of other seeds or
    ratios) were validated on different images, and their scores cannot be compared."""
    if len(ids) == len(first_ids) and (ids.equals(first_ids) or ids.sort_values().equals(first_ids.sort_values())):
        return
    own = validation_label(recorded_validation(member), len(ids))
    theirs = validation_label(recorded_validation(first), len(first_ids))
    raise UserError(f"--select: {member.name} was validated on {own}, {first.name} on {theirs}: members validated "
                    f"on different images cannot be compared; select each scheme's members separately, or blend "
                    f"without --select")


class Library:
    def __init__(self, apply_softmax: bool = False) -> None:
        self.apply_softmax = apply_softmax
        self._read: dict[Path, SoftCsv] = {}
        self.multi: MultiRule = None

    @property
    def paths_read(self) -> list[Path]:
        return list(self._read)

    def _soft(self, path: Path, labelled: bool) -> SoftCsv:
        if path not in self._read:
            self._read[path] = read_soft_csv(path, labelled=labelled, apply_softmax=self.apply_softmax)
        return self._read[path]

    def eval_csv(self, member: Member) -> SoftCsv:
        soft = self._soft(member.path, labelled=False)
        check_classes(soft, member.task, self.multi)
        return soft

    def valid_csv(self, member: Member) -> SoftCsv:
        path = valid_pair(member.path)
        if not path.is_file():
            raise UserError(f"{member.path}: its validation CSV {path.name} is missing (needed to score members)")
        soft = self._soft(path, labelled=True)
        check_classes(soft, member.task, self.multi)
        return soft

    def valid_score(self, member: Member, metric: str) -> float | None:
        """The member's own validation score, or None when it has no validation pair."""
        if not valid_pair(member.path).is_file():
            return None
        soft = self.valid_csv(member)
        return METRICS[metric](soft.labels, np.argmax(soft.probs, axis=1), soft.num_classes)

    def fix_multi_classes(self, multi: Sequence[Member], combined: bool) -> None:
        self.multi = multi_rule([self.eval_csv(m) for m in multi[:1]], combined)

    def eval_votes(self, members: Sequence[Member], task: str, order: pd.Index, reference: Path) -> list[np.ndarray]:
        """Each member's eval probabilities as a vote on `task`, rows in `order`."""
        return [probs_for_task(aligned(self.eval_csv(m), order, reference).probs, m.task, task) for m in members]

    def valid_votes(self, members: Sequence[Member], task: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Each member's validation probabilities as a vote on `task`, and the true `task` labels, rows in the first
        member's order. Members validated on different images, or on different labels, cannot be compared."""
        first = self.valid_csv(members[0])
        probs, labels = [], labels_for_task(first.labels, members[0].task, task)
        for member in members:
            check_same_validation(member, self.valid_csv(member).ids, members[0], first.ids)
            soft = aligned(self.valid_csv(member), first.ids, first.path)
            own = labels_for_task(soft.labels, member.task, task)
            differ = own != labels
            if differ.any():
                i = int(np.argmax(differ))
                raise UserError(f"{soft.path}: {task} label {own[i]} for {first.ids[i]!r} disagrees with "
                                f"{first.path}'s {labels[i]}: validation CSVs must come from the same split")
            probs.append(probs_for_task(soft.probs, member.task, task))
        return probs, labels
