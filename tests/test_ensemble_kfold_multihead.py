"""The ensemble with K-fold, multihead, per-task and 18-class members: tiny run folders written here, answers
computed by hand."""
import json
from pathlib import Path

import numpy as np
import pytest

from ensemble.library import validation_label
from ensemble_helpers import assert_user_error, make_run, read_submission, run_cli
from harness.data.labels import joint_probs

EVAL = ["e1", "e2"]
TRAIN = ["p1/mask1.jpg", "p1/normal.jpg", "p2/mask1.jpg", "p2/normal.jpg"]


def with_validation(run: Path, classification: str, validation: dict) -> Path:
    """make_run writes a holdout-era params.json: add what trial.py records now."""
    params = json.loads((run / "params.json").read_text())
    params.update(classification=classification, validation=validation)
    (run / "params.json").write_text(json.dumps(params))
    return run


def kfold(folds: int) -> dict:
    return {"scheme": "kfold", "folds": folds, "fold_seed": 0}


HOLDOUT = {"scheme": "holdout", "val_ratio": 0.5, "seed": 42}


def test_a_multihead_run_joins_every_task_through_its_heads(tmp_path, capsys):
    """A multihead run's 18-class CSV (outer product of its heads) votes on mask, gender and age with exactly its
    heads' probabilities, beside a mask run's own CSV."""
    heads = {"mask": np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]), "gender": np.array([[0.9, 0.1], [0.3, 0.7]]),
             "age": np.array([[0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])}
    joint = joint_probs(heads["mask"], heads["gender"], heads["age"])
    exp = tmp_path / "exp"
    with_validation(make_run(exp, "multi", "resnet18", "t1", {1: (EVAL, joint, None, None, None)},
                             folder="multihead_resnet18_16_focal_0.0001_t1"), "multihead", HOLDOUT)
    make_run(exp, "mask", "resnet18", "t2", {1: (EVAL, np.array([[0.6, 0.2, 0.2], [0.1, 0.8, 0.1]]), None, None,
                                                  None)})
    code, stdout, err = run_cli(["--from", exp, "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0, err
    assert "gathered 2 eval CSVs from 2 runs" in stdout and "mask 1, multi 1" in stdout
    # mask: e1 (0.2+0.6)/2, (0.5+0.2)/2, (0.3+0.2)/2 = 0.40, 0.35, 0.25 -> 0; e2 0.35, 0.55, 0.10 -> 1
    # gender and age from the heads alone: e1 male (0), >=60 (2); e2 female (1), <30 (0)
    assert read_submission(tmp_path / "sub.csv") == {"e1": 0 * 6 + 0 * 3 + 2, "e2": 1 * 6 + 1 * 3 + 0}
    blended_mask = np.loadtxt(tmp_path / "sub_mask_soft.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(blended_mask, [[0.40, 0.35, 0.25], [0.35, 0.55, 0.10]], atol=1e-6)


def kfold_and_holdout(tmp_path: Path) -> Path:
    """A 2-fold run (OOF over all four training images) and a holdout run (two of them), 3-class plain contest."""
    exp = tmp_path / "exp"
    labels = np.array([0, 1, 2, 1])
    oof = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])  # all four right
    with_validation(make_run(exp, "multi", "a", "t1", {1: (EVAL, np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]),
                                                            TRAIN, oof, labels)}), "multi", kfold(2))
    with_validation(make_run(exp, "multi", "b", "t2", {1: (EVAL, np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]),
                                                            TRAIN[2:], oof[2:], labels[2:])}), "multi", HOLDOUT)
    return exp


def test_select_refuses_to_mix_kfold_and_holdout_members(tmp_path, capsys):
    exp = kfold_and_holdout(tmp_path)
    code, _, err = run_cli(["--from", exp, "--select", "-o", tmp_path / "out" / "sub.csv"], capsys)
    assert_user_error(code, err, "--select: multi_b_16_focal_0.0001_t2/submission1",
                      "a holdout of 50% of the people (seed 42), 2 images",
                      "multi_a_16_focal_0.0001_t1/submission1_0.9312_0.2100_soft.csv on 2-fold out-of-fold "
                      "predictions of 4 images", "validated on different images cannot be compared",
                      "blend without --select")
    assert not (tmp_path / "out").exists()


def test_kfold_and_holdout_members_blend_without_select(tmp_path, capsys):
    exp = kfold_and_holdout(tmp_path)
    code, _, err = run_cli(["--from", exp, "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0, err
    # e1: (0.5+0.1)/2, (0.3+0.6)/2, (0.2+0.3)/2 = 0.30, 0.45, 0.25 -> 1; e2: 0.15, 0.20, 0.65 -> 2
    assert read_submission(tmp_path / "sub.csv") == {"e1": 1, "e2": 2}


def test_select_combines_kfold_members_of_different_k(tmp_path, capsys):
    """Both validated out-of-fold on every training image: comparable, image by image."""
    exp = tmp_path / "exp"
    labels = np.array([0, 1, 2, 1])
    right = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    wrong = np.array([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    with_validation(make_run(exp, "multi", "a", "t1", {1: (EVAL, np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]),
                                                            TRAIN, right, labels)}), "multi", kfold(2))
    with_validation(make_run(exp, "multi", "b", "t2", {1: (EVAL, np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]),
                                                            TRAIN, wrong, labels)}), "multi", kfold(3))
    code, stdout, err = run_cli(["--from", exp, "--select", "--rounds", "5", "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0, err
    # Round 1 takes the perfect member (macro-F1 1); adding either member again cannot beat 1, and the shortest
    # best prefix is kept: the ensemble is member a alone, so its eval argmaxes are the answer.
    assert "ensemble macro_f1 1.0000 vs best single 1.0000" in stdout and "1 members, 1 picks" in stdout
    assert read_submission(tmp_path / "sub.csv") == {"e1": 2, "e2": 0}


@pytest.mark.parametrize("recorded, images, text", [
    (kfold(5), 18900, "5-fold out-of-fold predictions of 18900 images"),
    (HOLDOUT, 2, "a holdout of 50% of the people (seed 42), 2 images"),
    (None, 7, "7 images"),
])
def test_validation_labels(recorded, images, text):
    assert validation_label(recorded, images) == text
