"""Multi-head models (--classification multihead): the 18-class joint CSV and its scores as pure functions, then one
standalone trial (with test-time augmentation) and a re-prediction from its checkpoint."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.labels import CLASSIFICATIONS, csv_task, joint_probs, multi_label
from harness.data.layouts import TrainSet, load_train
from harness.errors import UserError
from harness.outputs.records import val_scores
from harness.outputs.soft_csv import csv_labels, csv_probs
from harness.train.losses import create_loss
from harness.train.passes import Prediction, _heads_loss
from models import create_model
from trial_checks import check_probabilities, check_run_folder

ROOT = Path(__file__).resolve().parents[1]
HEADS = {"mask": 3, "gender": 2, "age": 3}
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0", "--tensorboard", "false"]


def test_the_joint_csv_is_the_outer_product_of_the_heads():
    mask, gender, age = np.array([[0.5, 0.3, 0.2]]), np.array([[0.6, 0.4]]), np.array([[0.1, 0.2, 0.7]])
    joint = joint_probs(mask, gender, age)
    assert joint.shape == (1, 18) and joint.sum() == pytest.approx(1)
    assert joint[0, multi_label(1, 1, 2)] == pytest.approx(0.3 * 0.4 * 0.7)  # column 11
    assert joint[0, multi_label(0, 0, 2)] == pytest.approx(0.5 * 0.6 * 0.7) == joint.max()  # the heads' argmaxes
    # Its marginals are the heads' own probabilities: the ensemble's multi marginals give each task its head's vote.
    by_class = np.arange(18)
    np.testing.assert_allclose([joint[0, by_class // 6 == m].sum() for m in range(3)], mask[0])
    np.testing.assert_allclose([joint[0, (by_class // 3) % 2 == g].sum() for g in range(2)], gender[0])
    np.testing.assert_allclose([joint[0, by_class % 3 == a].sum() for a in range(3)], age[0])
    probs = {"mask": mask, "gender": gender, "age": age}
    np.testing.assert_array_equal(csv_probs(probs, HEADS), joint)
    assert csv_labels(np.array([[2, 1, 0], [0, 0, 1]]), HEADS).tolist() == [15, 1]
    assert csv_task("multihead") == "multi" and csv_task("mask") == "mask"
    assert CLASSIFICATIONS["multihead"] == ("mask", "gender", "age")


def test_multihead_scores_are_the_18_class_ones_plus_each_head():
    # image 0: heads right (mask 0, gender 1, age 2); image 1: age wrong (predicted 0, true 1)
    probs = {"mask": np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]), "gender": np.array([[0.3, 0.7], [0.6, 0.4]]),
             "age": np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])}
    labels = np.array([[0, 1, 2], [1, 0, 1]])
    scores = val_scores(Prediction(probs, loss=1.5, accuracy={"mask": 1.0, "gender": 1.0, "age": 0.5}), labels,
                        HEADS)
    assert scores["val_acc"] == 0.5  # one of two images has all three heads right
    # 18-class F1: true classes 5 and 7, predicted 5 and 6 -> class 5 F1 1, classes 6 and 7 F1 0 -> 1/3
    assert scores["val_f1"] == pytest.approx(1 / 3)
    assert scores["val_acc_age"] == 0.5 and scores["val_f1_mask"] == 1.0 and scores["val_loss"] == 1.5
    assert scores["val_f1_age"] == pytest.approx((0 + 0 + 1) / 3)  # classes 0 (pred only), 1 (true only), 2 right


def test_the_loss_is_the_sum_of_the_heads_losses():
    torch.manual_seed(0)
    model = create_model("resnet10t", HEADS)
    logits = model(torch.randn(2, 3, 32, 32))
    assert {task: tuple(value.shape) for task, value in logits.items()} == {"mask": (2, 3), "gender": (2, 2),
                                                                            "age": (2, 3)}
    targets = torch.tensor([[0, 1, 2], [2, 0, 1]])
    criteria = {task: create_loss("cross_entropy", classes) for task, classes in HEADS.items()}
    expected = sum(torch.nn.functional.cross_entropy(logits[t], targets[:, h]) for h, t in enumerate(HEADS))
    assert _heads_loss(logits, targets, criteria).item() == pytest.approx(expected.item())


def test_multihead_needs_the_mask_contest_layout(tmp_path):
    plain = TrainSet(root=tmp_path / "train", paths=["a.jpg", "b.jpg"], labels={"multi": np.array([0, 1])},
                     class_names={"multi": ["cat", "dog"]}, groups=np.arange(2), group_strata=np.array([0, 1]),
                     layout="class folders")
    with pytest.raises(UserError, match="classification 'multihead' needs the mask contest's layout"):
        plain.heads("multihead")
    assert plain.heads("multi") == {"multi": 2}


def test_standalone_multihead_trial_with_tta_and_a_re_prediction(demo_dir, tmp_path):
    output = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                           str(output), "--epochs", "1", "--classification", "multihead", "--tta", "hflip",
                           "--dump_threshold", "0", *FAST], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = next((output / "standalone").iterdir())
    params = check_run_folder(run, demo_dir, epochs=1)  # 18 class columns, multi labels, val_acc from the CSV
    assert params["num_classes"] == 18 and params["heads"] == HEADS
    record = json.loads((run / "metrics.jsonl").read_text())
    valid = pd.read_csv(next(run.glob("valid1_*_soft.csv")))
    probs = valid.iloc[:, 2:].to_numpy()
    data = load_train(demo_dir)
    truth = dict(zip(data.paths, data.labels["mask"]))
    mask_marginal = np.stack([probs[:, np.arange(18) // 6 == m].sum(1) for m in range(3)], axis=1)
    mask_acc = np.mean(mask_marginal.argmax(1) == [truth[i] for i in valid["ImageID"]])
    assert mask_acc == pytest.approx(record["val_acc_mask"]), "the CSV's marginals are the mask head's"

    again = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(run), "--tta", "hflip"],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    repredicted = pd.read_csv(next(run.glob("valid1_*-pred1_soft.csv")))
    assert repredicted["ImageID"].tolist() == valid["ImageID"].tolist()
    check_probabilities(repredicted.iloc[:, 2:].to_numpy())
    np.testing.assert_allclose(repredicted.iloc[:, 2:].to_numpy(), probs, atol=2e-3)  # same weights, same TTA
