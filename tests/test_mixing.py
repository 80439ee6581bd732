"""MixUp/CutMix (harness/train/mixing.py): the decisions, and timm's mixing seen through the batch and targets."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target

from harness.train.mixing import BatchMixer, dominant_labels, head_marginals, joint_labels, mixable, mixing_enabled

HEADS = {"mask": 3, "gender": 2, "age": 3}


@pytest.mark.parametrize("mixup, cutmix, prob, enabled", [
    (0, 0, 1, False), (0.2, 0, 1, True), (0, 1.0, 1, True), (0.2, 1.0, 0, False), (0.2, 0, 0.5, True)])
def test_mixing_is_on_with_an_alpha_and_a_chance(mixup, cutmix, prob, enabled):
    assert mixing_enabled(mixup, cutmix, prob) is enabled


def test_an_odd_batch_mixes_all_but_its_last_image():
    assert [mixable(n) for n in (1, 2, 7, 8)] == [0, 2, 6, 8]


def test_joint_labels_are_the_18_class_label_and_marginals_undo_them():
    targets = torch.tensor([[2, 1, 0], [0, 0, 2]])
    joint = joint_labels(targets, HEADS)
    assert joint.tolist() == [2 * 6 + 1 * 3 + 0, 2]  # multi = mask*6 + gender*3 + age
    marginals = head_marginals(F.one_hot(joint, 18).float(), HEADS)
    assert {task: m.argmax(1).tolist() for task, m in marginals.items()} == \
        {"mask": [2, 0], "gender": [1, 0], "age": [0, 2]}


def test_dominant_labels_are_each_heads_arg_max():
    mixed = {"a": torch.tensor([[0.7, 0.3], [0.4, 0.6]]), "b": torch.tensor([[0.2, 0.1, 0.7], [1.0, 0, 0]])}
    assert dominant_labels(mixed).tolist() == [[0, 2], [1, 0]]


def test_mixup_mixes_each_image_with_its_reverse_and_the_targets_by_the_same_lambda():
    np.random.seed(0)
    images = torch.rand(4, 3, 8, 8)
    labels = torch.tensor([[0], [1], [2], [1]])
    mixed, targets = BatchMixer({"multi": 3}, mixup=0.4, cutmix=0.0, mix_prob=1.0)(images.clone(), labels)
    lam = targets["multi"][0, 0].item()  # image 0 (class 0) mixed with image 3 (class 1)
    assert 0 < lam < 1
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.flip(0), atol=1e-6)
    assert torch.allclose(targets["multi"], mixup_target(labels[:, 0], 3, lam))
    assert torch.allclose(targets["multi"].sum(1), torch.ones(4))


def test_cutmix_pastes_a_box_and_the_targets_follow_its_area():
    np.random.seed(0)  # a seed whose box is not empty (timm's correct_lam makes an empty box lambda 1)
    images = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    mixed, targets = BatchMixer({"multi": 2}, mixup=0.0, cutmix=1.0, mix_prob=1.0)(images.clone(),
                                                                               torch.tensor([[0], [1]]))
    pasted = mixed[0].mean().item()  # image 0 is zeros: the box from image 1 is ones
    assert 0 < pasted < 1 and torch.isclose(targets["multi"][0, 1], torch.tensor(pasted))


def test_an_odd_batch_leaves_its_last_image_and_target_alone():
    np.random.seed(2)
    images = torch.rand(5, 3, 4, 4)
    labels = torch.tensor([[0], [1], [2], [0], [1]])
    mixed, targets = BatchMixer({"multi": 3}, 0.4, 0.0, 1.0)(images.clone(), labels)
    assert torch.equal(mixed[4], images[4]) and targets["multi"][4].tolist() == [0, 1, 0]
    assert not torch.allclose(mixed[:4], images[:4])


def test_several_heads_share_the_lambda_and_the_partner():
    np.random.seed(3)
    labels = torch.tensor([[0, 1, 2], [2, 0, 1], [1, 1, 0], [0, 0, 0]])
    _, targets = BatchMixer(HEADS, 0.4, 0.0, 1.0)(torch.rand(4, 3, 4, 4), labels)
    lam = targets["gender"][0, 1].item()  # image 0 (female) with image 3 (male)
    for h, (task, classes) in enumerate(HEADS.items()):
        assert torch.allclose(targets[task], mixup_target(labels[:, h], classes, lam), atol=1e-6), task


def test_mix_prob_zero_of_the_batches_leaves_them_unmixed():
    np.random.seed(4)
    images, labels = torch.rand(4, 3, 4, 4), torch.tensor([[0], [1], [2], [1]])
    mixer = BatchMixer({"multi": 3}, 0.4, 0.0, 1e-9)
    mixed, targets = mixer(images.clone(), labels)
    assert torch.equal(mixed, images) and torch.equal(targets["multi"], F.one_hot(labels[:, 0], 3).float())
    with pytest.raises(ValueError, match="mixup or cutmix above 0"):
        BatchMixer({"multi": 3}, 0.0, 0.0, 1.0)
