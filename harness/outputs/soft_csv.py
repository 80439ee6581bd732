"""The soft-CSV format, both sides: the names and frames a trial writes, and the checked reading the ensemble and
the report use.

A soft CSV: `ImageID`, optionally `label` (validation CSVs: the true class), then one probability column per class
named `0`..`K-1`. Reading ends every problem in a UserError naming the file and the problem, so a bad file stops a
run before any output is written. Class columns are picked by name: column order and extra columns (an old 'ans',
'Unnamed: 0') do not matter."""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.labels import joint_probs, multi_label
from harness.errors import UserError, one_line

if TYPE_CHECKING:  # pandas is imported where a CSV is written or read: not in a trial's start (0.2 s, 30 MB)
    import pandas as pd

EVAL_PREFIX, VALID_PREFIX = "submission", "valid"
# submission{epoch}_{train_acc:.4f}_{train_loss:.4f}_soft.csv: stricter than 'submission*', so that an ensemble's
# blended outputs (submission_mask_soft.csv) are never taken for a trial's.
EVAL_NAME = re.compile(rf"{EVAL_PREFIX}\d+_[^_]+_[^_]+_soft\.csv")


def soft_csv_names(epoch: int, train_accuracy: float, train_loss: float, tag: str = "") -> tuple[str, str]:
    """(eval CSV, validation CSV) file names, after the original contest code's. A re-prediction's tag ('-pred1')
    follows the loss: no underscore, so the ensemble's pattern still reads the name."""
    tail = f"{epoch}_{train_accuracy:.4f}_{train_loss:.4f}{tag}_soft.csv"
    return f"{EVAL_PREFIX}{tail}", f"{VALID_PREFIX}{tail}"


def valid_name(eval_name: str) -> str | None:
    """The validation partner of an eval soft CSV's name (None when the name is not one)."""
    if not eval_name.startswith(EVAL_PREFIX):
        return None
    return VALID_PREFIX + eval_name[len(EVAL_PREFIX):]


def soft_frame(image_ids: list[str], probs: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
    """ImageID, [label,] then one probability column per class named 0..K-1."""
    import pandas as pd

    columns = {"ImageID": image_ids}
    if labels is not None:
        columns["label"] = np.asarray(labels, dtype=np.int64)
    frame = pd.DataFrame(columns)
    class_columns = pd.DataFrame(probs, columns=[str(k) for k in range(probs.shape[1])])
    return pd.concat([frame, class_columns], axis=1)


@dataclass(frozen=True)
class SoftTable:
    """One CSV of a dump before it is written: image ids, [N, K] probabilities, and a validation CSV's labels."""
    ids: list[str]
    probs: np.ndarray
    labels: np.ndarray | None = None

    def frame(self) -> pd.DataFrame:
        return soft_frame(self.ids, self.probs, self.labels)


def _joint_heads(heads: Mapping[str, int]) -> None:
    if set(heads) != {"mask", "gender", "age"}:
        raise ValueError(f"a soft CSV joins the heads mask, gender and age, not {', '.join(heads)}")


def csv_probs(probs: Mapping[str, np.ndarray], heads: Mapping[str, int]) -> np.ndarray:
    """The probability columns of a run's soft CSV: its one head's, or for the mask, gender and age heads of a
    'multihead' model the 18-class outer product (harness.data.labels.joint_probs says why)."""
    if len(heads) == 1:
        return probs[next(iter(heads))]
    _joint_heads(heads)
    return joint_probs(probs["mask"], probs["gender"], probs["age"])


def csv_labels(labels: np.ndarray, heads: Mapping[str, int]) -> np.ndarray:
    """The label column of a validation CSV from [N, heads] labels: the one head's, or the 18-class multi label."""
    labels = labels[:, None] if labels.ndim == 1 else labels
    if len(heads) == 1:
        return labels[:, 0]
    _joint_heads(heads)
    column = {task: labels[:, h] for h, task in enumerate(heads)}
    return multi_label(column["mask"], column["gender"], column["age"])


ID = "ImageID"
LABEL = "label"
# Rows are written with 7 significant digits; anything further from 1 is not a probability row.
SUM_TOLERANCE = 1e-3
_CLASS_COLUMN = re.compile(r"\d+")
_REPEATED_CLASS_COLUMN = re.compile(r"\d+\.\d+")  # pandas renames a second '3' to '3.1'


@dataclass(frozen=True)
class SoftCsv:
    path: Path
    ids: pd.Index                   # ImageIDs in file order, unique
    probs: np.ndarray               # (rows, classes) float64, rows are probabilities
    labels: np.ndarray | None = None  # true classes (validation CSVs only)

    @property
    def num_classes(self) -> int:
        return self.probs.shape[1]


def _line(bad_rows: np.ndarray) -> int:
    """The file line of the first bad row: the header is line 1."""
    return int(np.flatnonzero(bad_rows)[0]) + 2


def read_table(path: Path) -> pd.DataFrame:
    """The CSV as a frame with a unique, non-empty ImageID column."""
    import pandas as pd

    try:
        with warnings.catch_warnings():
            # A row longer than the header would otherwise be cut short, or turned into an index, silently.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # na_filter off: a third faster; an empty or 'NaN' cell then reads as text and is refused as such.
            frame = pd.read_csv(path, engine="c", dtype={ID: str}, index_col=False, na_filter=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file, expected a CSV with a header") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, OSError) as error:
        raise UserError(f"{path}: unreadable CSV ({one_line(error)})") from None
    if ID not in frame.columns:
        raise UserError(f"{path}: no '{ID}' column (columns: {', '.join(map(str, frame.columns[:8]))})")
    if frame.empty:
        raise UserError(f"{path}: no rows")
    ids = frame[ID]
    empty = (ids == "").to_numpy()
    if empty.any():
        raise UserError(f"{path}: empty {ID} on line {_line(empty)}")
    duplicated = ids.duplicated()
    if duplicated.any():
        raise UserError(f"{path}: {int(duplicated.sum())} duplicate {ID}s (e.g. {ids[duplicated].iloc[0]!r} "
                        f"on line {_line(duplicated.to_numpy())})")
    return frame


def class_columns(frame: pd.DataFrame, path: Path) -> list[str]:
    repeated = [c for c in map(str, frame.columns) if _REPEATED_CLASS_COLUMN.fullmatch(c)]
    if repeated:
        raise UserError(f"{path}: class column '{repeated[0].split('.')[0]}' appears more than once")
    names = sorted((c for c in map(str, frame.columns) if _CLASS_COLUMN.fullmatch(c)), key=int)
    if len(names) < 2:
        raise UserError(f"{path}: expected class columns '0'..'K-1' (K >= 2), found {len(names)}")
    if names != [str(k) for k in range(len(names))]:
        raise UserError(f"{path}: class columns must be '0'..'{len(names) - 1}', found {', '.join(names)}")
    return names


def numeric(frame: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    """The columns as float64, refusing empty, NaN, infinite and text cells."""
    import pandas as pd

    values = np.empty((len(frame), len(columns)))
    for j, column in enumerate(columns):
        cells = frame[column]
        if not pd.api.types.is_numeric_dtype(cells):
            parsed = pd.to_numeric(cells, errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                raise UserError(f"{path}: empty, NaN or non-numeric cell {cells[bad].iloc[0]!r} in column "
                                f"'{column}' on line {_line(bad)}")
            cells = parsed
        values[:, j] = cells.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(f"{path}: NaN or infinite cell in column '{columns[col]}' on line {row + 2}")
    return values


def check_probabilities(probs: np.ndarray, path: Path) -> None:
    negative = (probs < 0).any(axis=1)
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    hint = "rows must be probabilities (softmax); pass --softmax if these are logits"
    if negative.any():
        raise UserError(f"{path}: negative value on line {_line(negative)}: {hint}")
    if off.any():
        raise UserError(f"{path}: row on line {_line(off)} sums to {sums[off][0]:.6g}, not 1: {hint}")


def read_labels(frame: pd.DataFrame, num_classes: int, path: Path) -> np.ndarray:
    if LABEL not in frame.columns:
        raise UserError(f"{path}: no '{LABEL}' column: a validation soft CSV holds the true class of each image")
    labels = numeric(frame, [LABEL], path)[:, 0]
    bad = (labels != np.round(labels)) | (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise UserError(f"{path}: label {labels[bad][0]:g} on line {_line(bad)} is not a class in 0..{num_classes - 1}")
    return labels.astype(np.int64)


def read_soft_csv(path: Path, labelled: bool = False, apply_softmax: bool = False) -> SoftCsv:
    """One soft CSV, checked; with `apply_softmax` its class columns are logits turned into probabilities."""
    import pandas as pd

    frame = read_table(path)
    columns = class_columns(frame, path)
    probs = numeric(frame, columns, path)
    if apply_softmax:
        probs = softmax(probs)
    check_probabilities(probs, path)
    labels = read_labels(frame, len(columns), path) if labelled else None
    return SoftCsv(path=path, ids=pd.Index(frame[ID]), probs=probs, labels=labels)


def read_ids(path: Path) -> pd.Index:
    """The ImageID column of a file such as eval/info.csv (other columns, e.g. its 'ans', are ignored)."""
    import pandas as pd

    return pd.Index(read_table(path)[ID])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; subtracting the row maximum keeps exp() from overflowing (--softmax inputs hold logits)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
