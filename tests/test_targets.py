"""Training targets beyond the labels (harness/train/targets.py) and the dump rules (harness/fit/dump_rule.py): the
pure parts by hand, then tiny real trials with soft targets, pseudo-labels and both under MixUp."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.labels import joint_probs
from harness.errors import UserError
from harness.fit.dump_rule import DUMP_RULES, DumpRule
from harness.fit.hooks import Epoch
from harness.outputs.soft_csv import soft_frame
from harness.train.mixing import BatchMixer
from harness.train.passes import TrainResult
from harness.train.targets import SoftTargets, blend_targets, confident, head_probabilities
from trial_checks import records

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0", "--dump_threshold", "0", "--seed", "5", "--tensorboard", "false"]


def test_soft_targets_blend_the_label_with_the_given_row():
    blended = blend_targets(np.array([0, 2]), np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]]), 0.3)
    np.testing.assert_allclose(blended, [[0.85, 0.15, 0.0], [0.06, 0.06, 0.88]])
    np.testing.assert_allclose(blended.sum(1), 1)


def test_an_18_class_csv_serves_each_head_through_its_marginals(tmp_path):
    mask, gender, age = np.array([[0.2, 0.5, 0.3]]), np.array([[0.9, 0.1]]), np.array([[0.1, 0.1, 0.8]])
    probs = head_probabilities(joint_probs(mask, gender, age), {"mask": 3, "gender": 2, "age": 3}, tmp_path)
    for task, expected in (("mask", mask), ("gender", gender), ("age", age)):
        np.testing.assert_allclose(probs[task], expected)
    with pytest.raises(UserError, match="4 class columns cannot give the multi head's 18 classes"):
        head_probabilities(np.full((1, 4), 0.25), {"multi": 18}, tmp_path)


def test_only_images_confident_in_every_head_are_pseudo_labelled():
    heads = {"mask": np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9]]),
             "age": np.array([[0.9, 0.1], [0.99, 0.01], [0.5, 0.5]])}
    assert confident(heads, 0.9).tolist() == [0]
    assert confident(heads, 0.5).tolist() == [0, 1, 2]


def test_soft_targets_are_looked_up_by_the_image_index_and_mixed_as_probabilities():
    table = {"multi": torch.eye(4)[[3, 2, 1, 0]]}  # image i's target: class 3 - i
    images, labels = torch.zeros(4, 3, 2, 2), torch.tensor([[0, 2], [1, 0], [1, 3], [0, 1]])  # last column: index
    _, targets = SoftTargets(table)(images, labels)
    assert targets["multi"].argmax(1).tolist() == [1, 3, 0, 2]
    mixer = BatchMixer({"multi": 4}, mixup=0.4, cutmix=0.0, mix_prob=1.0)
    _, mixed = SoftTargets(table, mixer)(images, labels)
    lam = mixed["multi"][0, 1].item()  # row 0 is lam * target(image 2) + (1 - lam) * target(image 1)
    torch.testing.assert_close(mixed["multi"][0], lam * table["multi"][2] + (1 - lam) * table["multi"][1])
    torch.testing.assert_close(mixed["multi"].sum(1), torch.ones(4))


def epoch_with(acc: float, loss: float, score: float | None) -> Epoch:
    return Epoch(1, 1, TrainResult(loss=loss, accuracy=acc, images=8, seconds=1.0), None, {"val_acc": score})


@pytest.mark.parametrize("rule, history, expected", [
    ("contest", [(0.95, 0.3, 0.5), (0.96, 0.4, 0.9)], [True, False]),    # the loss rose: the better epoch skipped
    ("improved", [(0.95, 0.3, 0.5), (0.96, 0.4, 0.9)], [True, True]),
    ("either", [(0.95, 0.3, 0.5), (0.96, 0.4, 0.9), (0.96, 0.35, 0.6)], [True, True, True]),
    ("either", [(0.95, 0.3, 0.5), (0.96, 0.5, 0.4)], [True, False]),
    ("improved", [(0.85, 0.3, 0.9)], [False]),                             # below the threshold: never
])
def test_dump_rules(rule, history, expected):
    hook = DumpRule(rule, 0.9)
    hook.loop = SimpleNamespace(key="val_acc")
    hook.before_split()
    decided = []
    for acc, loss, score in history:
        epoch = epoch_with(acc, loss, score)
        hook.after_epoch(epoch)
        decided.append(epoch.dump)
    assert decided == expected


@pytest.mark.parametrize("rule", DUMP_RULES)
def test_every_dump_rule_starts_afresh_with_each_split(rule):
    hook = DumpRule(rule, 0.0)
    hook.loop = SimpleNamespace(key="val_acc")
    for _ in range(2):
        hook.before_split()
        first = epoch_with(0.5, 1.0, 0.5)
        hook.after_epoch(first)
        assert first.dump


def run(tmp_path: Path, demo_dir: Path, *args: str, epochs: int = 1) -> Path:
    output = tmp_path / f"runs{len(list(tmp_path.glob('runs*')))}"
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                           str(output), "--epochs", str(epochs), *FAST, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    [folder] = (output / "standalone").iterdir()
    return folder


def eval_csv(tmp_path: Path, demo_dir: Path, confident_rows: int) -> Path:
    """An ensemble-like 18-class eval soft CSV: the first rows sure of class 4, the rest unsure."""
    ids = pd.read_csv(demo_dir / "eval" / "info.csv")["ImageID"].tolist()
    probs = np.full((len(ids), 18), 1 / 18)
    probs[:confident_rows] = np.eye(18)[4] * 0.95 + 0.05 / 18
    path = tmp_path / "submission_multi_soft.csv"
    soft_frame(ids, probs).to_csv(path, index=False)
    return path


def test_pseudo_labelled_eval_images_join_training_only(demo_dir, tmp_path):
    folder = run(tmp_path, demo_dir, "--pseudo_labels", str(eval_csv(tmp_path, demo_dir, 7)),
                 "--pseudo_threshold", "0.9", "--classification", "gender")
    summary = json.loads((folder / "params.json").read_text())["training_targets"]["pseudo_labels"]
    assert summary["added"] == 7 and summary["per_class"] == {"gender": [0, 7]}  # class 4: wear, female, 30-59
    valid = pd.read_csv(next(folder.glob("valid1_*_soft.csv")))
    assert valid["ImageID"].str.contains("/").all(), "an eval image (named by a hash, no folder) reached validation"
    assert records(folder)[0]["train_images_per_s"] > 0


def test_soft_targets_need_a_row_for_every_training_image(demo_dir, tmp_path):
    partial = tmp_path / "oof.csv"
    soft_frame(["000001_male_Asian_18/mask1.jpg"], np.full((1, 18), 1 / 18), np.array([0])).to_csv(partial,
                                                                                                     index=False)
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                           str(tmp_path / "runs"), *FAST, "--soft_targets", str(partial)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "oof.csv: no row for 167 of the 168 training images" in done.stderr.splitlines()[-1]
    assert not (tmp_path / "runs" / "standalone").exists() or not list((tmp_path / "runs" / "standalone").iterdir())


def test_distill_trains_a_kfold_run_on_its_blended_oof_targets(demo_dir, tmp_path):
    """distill.py: the K-fold run's OOF CSVs blended into soft targets, and the same configuration trained on them
    with MixUp, soft pseudo-labels and the weighted sampler on top."""
    kfold = run(tmp_path, demo_dir, "--folds", "2", epochs=2)
    experiment = kfold.parent.parent
    done = subprocess.run([sys.executable, str(ROOT / "distill.py"), str(experiment), "--soft_weight", "0.4", "--",
                           "--mixup", "0.2", "--sampler", "weighted", "--pseudo_labels",
                           str(eval_csv(tmp_path, demo_dir, 5)), "--pseudo_soft", "true"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    oof = experiment / "distill" / "oof_multi_soft.csv"
    assert pd.read_csv(oof)["ImageID"].nunique() == 168
    [distilled] = [p for p in (experiment / "standalone").iterdir() if p != kfold]
    params = json.loads((distilled / "params.json").read_text())
    assert params["soft_targets"] == str(oof.resolve()) and params["soft_weight"] == 0.4 and params["folds"] == 2
    assert params["training_targets"]["pseudo_labels"]["added"] == 5
    assert json.loads((distilled / "kfold.json").read_text())["best_epoch"] in (1, 2)
