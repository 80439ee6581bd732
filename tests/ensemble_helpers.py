"""Builders for the ensemble tests and benchmark: soft CSVs and run folders written the way trial.py writes them."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.cli import PROG, run
from harness.outputs.soft_csv import soft_csv_names, soft_frame, softmax


def write_soft(path: Path, ids: Sequence[str], probs, labels=None, *, columns: Sequence[str] | None = None,
               extra: dict | None = None, shuffle: int | None = None) -> Path:
    """A soft CSV as a trial writes it (harness.outputs.soft_csv.soft_frame): ImageID, [label], '0'..'K-1'.
    Then, to make it messy but valid: `columns` reorders, `extra` adds columns, `shuffle` (a seed) shuffles the rows."""
    frame = soft_frame(list(ids), np.asarray(probs, dtype=float), labels)
    for name, values in (extra or {}).items():
        frame[name] = values
    if columns is not None:
        frame = frame[list(columns)]
    if shuffle is not None:
        frame = frame.sample(frac=1.0, random_state=shuffle)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.7g")
    return path


def noisy_probs(rng: np.random.Generator, labels: np.ndarray, classes: int, skill: float) -> np.ndarray:
    """Probabilities that lean towards the true labels by `skill` (0: noise)."""
    logits = rng.normal(size=(len(labels), classes))
    logits[np.arange(len(labels)), labels] += skill
    return softmax(logits)


def make_run(experiment: Path, task: str, model: str, trial: str, epochs: dict[int, tuple], *,
             num_classes: int | None = None, folder: str | None = None) -> Path:
    """A run folder as trial.py leaves it. epochs: {epoch: (eval_ids, eval_probs, valid_ids | None, valid_probs,
    valid_labels)}; valid_ids None writes no validation pair."""
    classes = num_classes or next((e[1].shape[1] for e in epochs.values()), 0)
    run_folder = experiment / (folder or f"{task}_{model}_16_focal_0.0001_{trial}")
    run_folder.mkdir(parents=True, exist_ok=True)
    params = {"classification": task, "model": model, "criterion": "focal", "batch_size": 16, "lr": 1e-4,
              "experiment_id": experiment.name, "trial_id": trial, "num_classes": classes, "seed": 42,
              "epochs": max(epochs, default=1)}
    (run_folder / "params.json").write_text(json.dumps(params))
    (run_folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in epochs))
    for epoch, (eval_ids, eval_probs, valid_ids, valid_probs, valid_labels) in epochs.items():
        eval_name, valid_name = soft_csv_names(epoch, 0.9312, 0.21)
        write_soft(run_folder / eval_name, eval_ids, eval_probs)
        if valid_ids is not None:
            write_soft(run_folder / valid_name, valid_ids, valid_probs, valid_labels)
    return run_folder


def add_nni_folders(experiment: Path) -> None:
    """What NNI itself keeps beside the run folders: never runs."""
    for sub in ("trials/AbC12", "db", "log"):
        (experiment / sub).mkdir(parents=True, exist_ok=True)
    (experiment / "trials/AbC12/parameter.cfg").write_text('{"parameters": {"lr": 0.1}}')
    (experiment / "db/nni.sqlite").write_bytes(b"\x00SQLite")
    (experiment / "log/nnimanager.log").write_text("started\n")


def run_cli(argv: Sequence[str], capsys) -> tuple[int, str, str]:
    """The CLI in-process, exactly as `python -m ensemble` runs it: (exit status, stdout, stderr)."""
    try:
        run([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return int(code or 0), captured.out, captured.err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2 and one line on stderr, no traceback, holding every needle."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{PROG}: error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def read_submission(path: Path) -> dict[str, int]:
    frame = pd.read_csv(path, dtype={"ImageID": str})
    assert list(frame.columns) == ["ImageID", "ans"]
    return dict(zip(frame["ImageID"], frame["ans"].astype(int)))
