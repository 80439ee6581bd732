"""Checks of a trial's run folder shared by the standalone and the NNI tests: every file and its contents."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from harness.data.labels import CLASSIFICATIONS, csv_task
from harness.data.layouts import load_train
from harness.experiment.follower import Follower
from harness.experiment.nnictl import free_port, nnictl, nnictl_env, start, stop
from harness.experiment.rest import NniRest

METRIC_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr", "seconds",
               "train_images_per_s", "dumped"}
AVERAGE_SCORES = {"val_loss", "val_acc", "val_f1"}  # --ema_decay: raw_<score>, the trained weights' own scores


def check_run_folder(run: Path, data_dir: Path, epochs: int) -> dict:
    """Returns params.json after checking metrics.jsonl and every soft CSV against the data set."""
    params = json.loads((run / "params.json").read_text())
    classification, classes = params["classification"], params["num_classes"]
    task = csv_task(classification)  # what the CSVs predict: 'multi' for a multihead run
    heads = CLASSIFICATIONS[classification]
    head_keys = {f"val_{score}_{head}" for head in heads for score in ("acc", "f1")} if len(heads) > 1 else set()
    assert re.fullmatch(rf"{classification}_{re.escape(params['model'])}_{params['batch_size']}_"
                        rf"{re.escape(params['criterion'])}_{params['lr']:.3g}_{params['trial_id']}", run.name)
    assert Path(params["data_dir"]) == data_dir.resolve()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    # --ema_decay: the average's scores as val_*, the raw weights' as raw_val_* (per head too)
    average_keys = {f"raw_{k}" for k in AVERAGE_SCORES | head_keys} if params.get("ema_decay") else set()
    assert all(set(r) == METRIC_KEYS | head_keys | average_keys for r in records)
    assert all(r["seconds"] > 0 and r["train_images_per_s"] > 0 for r in records)

    train = load_train(data_dir)
    true_label = dict(zip(train.paths, train.labels[task]))
    eval_ids = pd.read_csv(data_dir / "eval" / "info.csv")["ImageID"].tolist()
    dumped = [r for r in records if r["dumped"]]
    expected = set()
    for record in dumped:
        tail = f"{record['epoch']}_{record['train_acc']:.4f}_{record['train_loss']:.4f}_soft.csv"
        expected |= {f"submission{tail}", f"valid{tail}"}
        submission = pd.read_csv(run / f"submission{tail}")
        assert list(submission.columns) == ["ImageID"] + [str(k) for k in range(classes)]
        assert submission["ImageID"].tolist() == eval_ids
        check_probabilities(submission.iloc[:, 1:].to_numpy())
        valid = pd.read_csv(run / f"valid{tail}")
        assert list(valid.columns) == ["ImageID", "label"] + [str(k) for k in range(classes)]
        assert valid["label"].tolist() == [true_label[i] for i in valid["ImageID"]]
        check_probabilities(valid.iloc[:, 2:].to_numpy())
        accuracy = (valid.iloc[:, 2:].to_numpy().argmax(1) == valid["label"].to_numpy()).mean()
        assert np.isclose(accuracy, record["val_acc"])
    assert {p.name for p in run.glob("*.csv")} == expected
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
    return params


def check_probabilities(probs: np.ndarray) -> None:
    assert (probs >= 0).all() and (probs <= 1).all()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


# Starting a standalone trial and reading its records back, for the kill-and-resume tests.
ROOT = Path(__file__).resolve().parents[1]
# Wall-clock figures are the only fields a resumed epoch cannot share with an uninterrupted one.
TIMING = {"seconds", "train_images_per_s"}


def trial(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "trial.py"), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def run_to_end(config: dict, folder: Path, timeout: int = 900) -> tuple[str, str, list[dict], list[dict]]:
    """Runs `config` (written to folder/config.yml) through nnictl on a free port to its end, and always stops it:
    (experiment id, NNI's final status, its trials, its metrics)."""
    finished = follow_to_end(config, folder, timeout)
    return finished.experiment_id, finished.status, finished.trials, finished.metrics


@dataclass
class Finished:
    experiment_id: str
    status: str
    trials: list[dict]
    metrics: list[dict]
    export: list[dict]   # nnictl experiment export (json)
    lines: list[str]     # what the follower printed


def follow_to_end(config: dict, folder: Path, timeout: int = 900) -> Finished:
    """run_to_end, followed as `python -m harness.experiment` follows (its lines kept, NNI's logs read), and
    `nnictl experiment export` taken before the stop."""
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    experiment_id = start(path, port)
    experiment = Path(config["experimentWorkingDirectory"]) / experiment_id
    lines: list[str] = []
    try:
        rest = NniRest(port)
        status = Follower(rest, lines.append, manager_log=experiment / "log" / "nnimanager.log",
                          runs_dir=experiment).wait(timeout)
        exported = folder / "export.json"
        subprocess.run([nnictl(), "experiment", "export", experiment_id, "--filename", str(exported), "--type",
                        "json"], env=nnictl_env(), check=True, capture_output=True, timeout=120)
        return Finished(experiment_id, status, rest.trials(), rest.metrics(), json.loads(exported.read_text()),
                        lines)
    finally:
        stop(experiment_id)
