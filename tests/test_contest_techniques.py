"""Mixing, class imbalance and weight averaging through trial.py standalone: one tiny trial per flag, each checked
against a run of the same seed without it; the averaged weights are what a dump and predict.py predict with."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.data.layouts import load_eval, load_train
from harness.data.loaders import LoaderSettings, TrainingDraw, build_loaders
from harness.data.split import split_indices
from harness.data.transforms import Normalizer
from harness.train.checkpoint import load
from harness.train.precision import resolve_device, resolve_precision
from harness.train.predictor import Predictor
from models import create_model
from trial_checks import check_run_folder

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
        "--num_workers", "0", "--dump_threshold", "0", "--seed", "5"]


def run_trial(output: Path, data: Path, *flags: str, epochs: int = 1) -> tuple[Path, list[dict]]:
    """In this process (trial.main, as tests/test_trial.py does): a new interpreter per trial would spend more
    time importing torch and timm than the trial trains."""
    import trial

    assert trial.main(["--data_dir", str(data), "--output_dir", str(output), "--epochs", str(epochs), *FAST,
                       *flags]) == 0
    run = next((output / "standalone").iterdir())
    check_run_folder(run, data, epochs=epochs)  # the validation CSVs' labels included: the contest's rule
    return run, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def baseline(demo_dir, tmp_path_factory) -> dict:
    return run_trial(tmp_path_factory.mktemp("baseline"), demo_dir)[1][0]


@pytest.mark.parametrize("flags", [
    ["--mixup", "0.4"],
    ["--cutmix", "1.0", "--batch_size", "7"],  # an odd batch: its last image stays unmixed
    ["--class_weights", "inverse", "--criterion", "focal"],
    ["--sampler", "weighted"],
    ["--old_age", "59", "--classification", "age"],
    ["--optimizer", "sam"],
    ["--optimizer", "asam", "--sam_base", "sgd"],
    ["--criterion", "focal+f1", "--loss_weights", "0.6,0.4", "--class_weights", "inverse", "--mixup", "0.4"],
], ids=lambda flags: "-".join(flag for flag in flags if not flag.startswith("--")))
def test_each_technique_runs_standalone_and_changes_training(demo_dir, tmp_path, baseline, flags):
    run, (record,) = run_trial(tmp_path, demo_dir, *flags)
    params = json.loads((run / "params.json").read_text())
    assert params[flags[0][2:]] == type(params[flags[0][2:]])(flags[1])
    assert 0 <= record["train_acc"] <= 1 and np.isfinite(record["train_loss"])
    assert record["train_loss"] != baseline["train_loss"], "the flag changed nothing in training"


def test_old_age_changes_only_the_training_labels(demo_dir):
    data = load_train(demo_dir)
    train_idx, val_idx = split_indices(data.groups, data.group_strata, 0.2, 42)
    labels, moved = data.task_labels("age")[:, None], data.task_labels("age", 45)[:, None]
    loaders = build_loaders(data, None, labels, train_idx, val_idx, LoaderSettings(
        batch_size=8, num_workers=0, seed=0, img_size=32, crop=0.8, cache=False, cache_dir="", pin_memory=False),
        TrainingDraw(labels=moved))
    assert (loaders.train.dataset.labels == moved[train_idx]).all()
    assert (loaders.val_labels == labels[val_idx]).all() and (loaders.val.dataset.labels == labels[val_idx]).all()
    assert (moved[train_idx] != labels[train_idx]).any()


def test_ema_dumps_and_predict_py_come_from_the_averaged_weights(demo_dir, tmp_path):
    run, records = run_trial(tmp_path, demo_dir, "--ema_decay", "0.9", epochs=2)
    assert records[-1]["raw_val_acc"] is not None and records[-1]["dumped"]
    data, evaluation = load_train(demo_dir), load_eval(demo_dir)
    train_idx, val_idx = split_indices(data.groups, data.group_strata, 0.2, 5)  # FAST's seed
    checkpoint = load(run / "last.pt")
    fit = checkpoint["fit"]
    assert checkpoint["step"] == 2 and fit["average"]["steps"] == 2 * (len(train_idx) // 8), "one per step"
    tail = f"2_{records[-1]['train_acc']:.4f}_{records[-1]['train_loss']:.4f}_soft.csv"
    valid, submission = pd.read_csv(run / f"valid{tail}"), pd.read_csv(run / f"submission{tail}")

    # Predicting here with each set of weights: the CSVs are the average's, not the trained weights'.
    loaders = build_loaders(data, evaluation, data.task_labels("multi")[:, None], train_idx, val_idx, LoaderSettings(
        batch_size=8, num_workers=0, seed=5, img_size=32, crop=0.8, cache=True, cache_dir="", pin_memory=False))
    device = resolve_device("cpu")
    precision = resolve_precision(device, "auto", "auto")
    heads = {"multi": 18}

    def val_probs(state: dict) -> np.ndarray:
        model = create_model("resnet10t", heads, False, "")
        model.load_state_dict(state)
        model = model.to(device, memory_format=precision.memory_format)
        normalize = Normalizer(*data.mean_std, device=device, channels_last=precision.channels_last)
        return Predictor(model, heads, normalize, precision)(loaders.val).probs["multi"]

    averaged, trained = val_probs(fit["average"]["weights"]), val_probs(fit["model"])
    written = valid.iloc[:, 2:].to_numpy()
    assert np.allclose(written, averaged, atol=1e-6)
    assert not np.allclose(written, trained, atol=1e-3)
    assert np.isclose((averaged.argmax(1) == valid["label"]).mean(), records[-1]["val_acc"])
    assert np.isclose((trained.argmax(1) == valid["label"]).mean(), records[-1]["raw_val_acc"])

    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(run), "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    predicted = pd.read_csv(next(run.glob("valid*-pred1_soft.csv")))
    assert np.allclose(predicted.iloc[:, 2:].to_numpy(), written, atol=1e-6)
    again = pd.read_csv(next(run.glob("submission*-pred1_soft.csv")))
    assert np.allclose(again.iloc[:, 1:].to_numpy(), submission.iloc[:, 1:].to_numpy(), atol=1e-6)


def test_old_age_on_a_layout_without_ages_is_ignored_with_a_word(tmp_path, caplog):
    """A search space copied from the mask contest's (old_age 58, 59, 60) still runs on a single-label set."""
    import trial
    from harness.data.opencv import cv2

    for name in ("cat", "dog"):
        (tmp_path / "data" / "train" / name).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(tmp_path / "data" / "train" / name / f"{i}.png"), np.full((8, 8, 3), i * 40, np.uint8))
    assert trial.main(["--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "runs"), *FAST,
                       "--old_age", "58", "--epochs", "1"]) == 0
    [run] = (tmp_path / "runs" / "standalone").iterdir()
    params = json.loads((run / "params.json").read_text())
    assert params["old_age"] == 60 and "old_age 58 needs ages" in params["ignored"]["old_age"]
    assert "old_age 58 needs ages" in caplog.text


def test_sam_steps_once_per_batch_with_mixing_the_average_and_several_heads(demo_dir, tmp_path):
    """Two passes per batch, one step: the weight average and the base optimiser each count one step per batch."""
    run, (record,) = run_trial(tmp_path, demo_dir, "--optimizer", "sam", "--classification", "multihead",
                               "--mixup", "0.4", "--ema_decay", "0.9")
    data = load_train(demo_dir)
    train_idx, _ = split_indices(data.groups, data.group_strata, 0.2, 5)  # FAST's seed
    fit = load(run / "last.pt")["fit"]
    assert fit["average"]["steps"] == len(train_idx) // 8
    assert fit["optimizer"]["state"][0]["step"] == len(train_idx) // 8
    assert fit["optimizer"]["param_groups"][0]["rho"] == 0.05 and np.isfinite(record["val_loss"])
