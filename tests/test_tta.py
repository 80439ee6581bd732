import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from test_trial import FAST, ROOT, only_run, run_trial
from torch import nn

from harness.train.tta import MERGES, TTA, AugmentedViews, average_probabilities, merge_views


class LeftHalfVotes(nn.Module):
    """Class 0's logit is the mean of the left half: a mirror moves it to class 1."""

    def forward(self, images):
        half = images.shape[3] // 2
        return torch.stack([images[..., :half].mean((1, 2, 3)), images[..., half:].mean((1, 2, 3))], dim=1)


def test_hflip_averages_the_probabilities_of_the_image_and_its_mirror():
    images = torch.zeros(1, 1, 2, 2)
    images[..., 0] = 2.0  # left column bright: logits (2, 0), mirrored (0, 2)
    probs = torch.softmax(AugmentedViews(LeftHalfVotes(), "hflip")(images), dim=1)
    assert torch.allclose(probs, torch.tensor([[0.5, 0.5]]))
    plain = torch.softmax(AugmentedViews(LeftHalfVotes(), "none")(images), dim=1)
    assert plain[0, 0] > 0.85


def test_average_is_of_probabilities_per_head_not_of_logits():
    a = {"mask": torch.tensor([[10.0, 0.0]])}
    b = {"mask": torch.tensor([[0.0, 0.0]])}
    probs = torch.exp(average_probabilities([a, b])["mask"])
    expected = (torch.softmax(a["mask"], 1) + torch.softmax(b["mask"], 1)) / 2
    assert torch.allclose(probs, expected)


class MeanVotes(nn.Module):
    """Logits from the image's mean per channel: blind to where anything is, so any flip or rotation leaves them."""

    def forward(self, images):
        return images.mean((2, 3)) * 4


def asymmetric(side: int = 4) -> torch.Tensor:
    return torch.arange(3 * side * side, dtype=torch.float32).reshape(1, 3, side, side) / (3 * side * side)


@pytest.mark.parametrize("policy", sorted(TTA))
def test_every_view_of_a_square_keeps_its_shape_except_the_scales(policy):
    images = asymmetric(32)
    shapes = {view(images).shape[2:] for view in TTA[policy]}
    assert shapes == ({(28, 28), (32, 32), (36, 36)} if policy == "scales" else {(32, 32)})


def test_d4_is_the_8_rotations_and_mirrors_of_the_square():
    images = asymmetric()
    views = [view(images) for view in TTA["d4"]]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], images)
    for view in views:  # a group: any view, mirrored, is one of the eight
        assert any(torch.equal(torch.flip(view, dims=(3,)), other) for other in views)


@pytest.mark.parametrize("policy", ["hflip", "vflip", "flips", "d4"])
@pytest.mark.parametrize("merge", sorted(MERGES))
def test_a_model_blind_to_symmetries_predicts_the_same_through_every_symmetric_view(policy, merge):
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    merged = torch.softmax(AugmentedViews(MeanVotes(), policy, merge)(images), dim=1)
    assert torch.allclose(merged, torch.softmax(MeanVotes()(images), dim=1), atol=1e-6)


def test_a_five_crop_view_is_a_corner_resized_back_up():
    images = torch.zeros(1, 3, 8, 8)
    images[..., :7, :7] = 1.0  # the top-left crop at 0.875 is all ones, the bottom-right one is not
    top_left, bottom_right = TTA["five_crop"][1](images), TTA["five_crop"][4](images)
    assert top_left.shape == images.shape and torch.allclose(top_left, torch.ones_like(top_left))
    assert bottom_right.min() == 0


def test_gmean_is_the_renormalised_geometric_mean_of_the_probabilities():
    a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    geometric = (torch.softmax(a, 1) * torch.softmax(b, 1)).sqrt()
    merged = torch.softmax(merge_views([a, b], "gmean"), dim=1)
    assert torch.allclose(merged, geometric / geometric.sum(), atol=1e-6)
    assert not torch.allclose(merged, torch.exp(merge_views([a, b], "mean")), atol=1e-3)


@pytest.mark.parametrize("policy", sorted(TTA))
def test_a_tiny_trial_dumps_both_csvs_with_each_tta(demo_dir, tmp_path, policy):
    output = tmp_path / "runs"
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(output), "--epochs", "1",
                     "--classification", "gender", "--dump_threshold", "0", "--tta", policy, *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(output)
    assert list(run.glob("submission1_*_soft.csv")) and list(run.glob("valid1_*_soft.csv"))


def test_predict_py_applies_a_policy_and_merge_as_the_dumps_did(demo_dir, tmp_path):
    """The trial dumped with --tta d4 --tta_merge gmean; re-predicting with the same options gives its CSVs, with
    none it does not."""
    output = tmp_path / "runs"
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(output), "--epochs", "1", "--checkpoint",
                     "best", "--dump_threshold", "0", "--tta", "d4", "--tta_merge", "gmean", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(output)
    own = pd.read_csv(next(run.glob("valid1_*_soft.csv"))).iloc[:, 2:].to_numpy()  # before -pred1 joins it
    for options in (["--tta", "d4", "--tta_merge", "gmean"], ["--tta", "none"]):
        again = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(run), *options], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
    same = pd.read_csv(next(run.glob("valid1_*-pred1_soft.csv"))).iloc[:, 2:].to_numpy()
    plain = pd.read_csv(next(run.glob("valid1_*-pred2_soft.csv"))).iloc[:, 2:].to_numpy()
    assert np.allclose(own, same, atol=1e-5) and not np.allclose(own, plain, atol=1e-4)
