import pytest
import torch
from test_trial import FAST, only_run, run_trial
from torch import nn

from harness.train.tta import TTA, AugmentedViews, average_probabilities


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


@pytest.mark.parametrize("policy", sorted(TTA))
def test_a_tiny_trial_dumps_both_csvs_with_each_tta(demo_dir, tmp_path, policy):
    output = tmp_path / "runs"
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(output), "--epochs", "1",
                     "--classification", "gender", "--dump_threshold", "0", "--tta", policy, *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(output)
    assert list(run.glob("submission1_*_soft.csv")) and list(run.glob("valid1_*_soft.csv"))
