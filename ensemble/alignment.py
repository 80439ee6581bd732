"""Matching rows by ImageID, never by position: every input is reordered to one reference order."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.outputs.soft_csv import SoftCsv


def id_difference(ids: pd.Index, reference: pd.Index) -> str:
    """How `ids` differs from `reference`, with one example each way ('' when the sets are equal)."""
    missing, extra = reference.difference(ids), ids.difference(reference)
    parts = [f"{len(found)} {what} (e.g. {found[0]!r})" for what, found in (("missing", missing), ("extra", extra))
             if len(found)]
    return ", ".join(parts)


def check_same_ids(ids: pd.Index, path: Path, reference: pd.Index, reference_path: Path) -> None:
    if len(ids) == len(reference) and ids.equals(reference):
        return
    difference = id_difference(ids, reference)
    if difference:
        raise UserError(f"{path}: ImageIDs differ from {reference_path}: {difference}")


def aligned(soft: SoftCsv, order: pd.Index, reference_path: Path) -> SoftCsv:
    """`soft` with its rows in `order` (the reference's ImageIDs, unique); a different ID set is an error."""
    if soft.ids.equals(order):
        return soft
    check_same_ids(soft.ids, soft.path, order, reference_path)
    rows = soft.ids.get_indexer(order)
    labels = None if soft.labels is None else soft.labels[rows]
    return replace(soft, ids=order, probs=soft.probs[rows], labels=labels)
