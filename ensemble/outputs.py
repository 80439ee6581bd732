"""What the ensemble writes: the submission (ImageID, ans) and, beside it, each task's blended soft CSV."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.blending import vote
from harness.atomic import atomic_paths, csv_to
from harness.errors import UserError
from harness.outputs.soft_csv import ID


def soft_path(output: Path, task: str) -> Path:
    """submission.csv -> submission_mask_soft.csv in the same folder."""
    return output.with_name(f"{output.stem}_{task}_soft.csv")


def output_frames(output: Path, order: pd.Index, blended: Mapping[str, np.ndarray],
                  answer: np.ndarray) -> dict[Path, pd.DataFrame]:
    frames = {}
    for task, probs in blended.items():
        soft = pd.DataFrame(probs, columns=[str(k) for k in range(probs.shape[1])])
        soft.insert(0, ID, order)
        soft["ans"] = vote(probs)
        frames[soft_path(output, task)] = soft
    frames[output] = pd.DataFrame({ID: order, "ans": answer})
    return frames


def write_outputs(frames: Mapping[Path, pd.DataFrame], protected: Iterable[Path]) -> None:
    """Write every frame, none over a `protected` input; called only once every input has been read and checked,
    so a bad input leaves no output at all. The files appear together or not at all (a full disk: none of them)."""
    taken = {path.resolve() for path in protected}
    for path in frames:
        if path.is_dir():
            raise UserError(f"{path}: is a folder; -o needs a file name such as submission.csv")
        if path.resolve() in taken:
            raise UserError(f"{path}: is one of the inputs; choose another -o so it is not overwritten")
    replaced = [path for path in frames if path.exists()]
    with atomic_paths(list(frames)) as temporaries:
        for frame, tmp in zip(frames.values(), temporaries):
            with open(tmp, "w", newline="") as handle:
                csv_to(frame, handle)
    for path in replaced:  # the user asked for this path, but should know an earlier file is gone
        print(f"replaced the earlier {path}")
