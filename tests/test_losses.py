import itertools

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.train.losses import LOSSES, F1Loss, FocalLoss, create_loss, loss_mix


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("num_classes", [2, 3, 18])
def test_every_loss_is_finite_and_has_gradients(name, num_classes):
    torch.manual_seed(0)
    logits = torch.randn(8, num_classes, requires_grad=True)
    targets = torch.randint(0, num_classes, (8,))
    loss = create_loss(name, num_classes)(logits, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES)
def test_right_answers_cost_less_than_wrong_ones(name):
    targets = torch.tensor([0, 1, 2, 1])
    right = F.one_hot(targets, 3).float() * 8
    wrong = F.one_hot((targets + 1) % 3, 3).float() * 8
    loss = create_loss(name, 3)
    assert loss(right, targets) < loss(wrong, targets)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, targets = torch.randn(16, 5), torch.randint(0, 5, (16,))
    assert torch.isclose(FocalLoss(5, gamma=0)(logits, targets), F.cross_entropy(logits, targets))


def test_focal_down_weights_easy_images():
    logits = torch.tensor([[4.0, 0.0]])
    targets = torch.tensor([0])
    assert FocalLoss(2, gamma=2)(logits, targets) < F.cross_entropy(logits, targets) / 100


def test_label_smoothing_by_hand():
    """torch's smoothing: the target is 0.9 + 0.1 / K on the true class and 0.1 / K on each other class."""
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    log_p = F.log_softmax(logits, dim=1)[0]
    expected = -((0.9 + 0.1 / 3) * log_p[0] + 0.1 / 3 * log_p[1] + 0.1 / 3 * log_p[2])
    assert torch.isclose(create_loss("label_smoothing", 3)(logits, targets), expected)


def test_f1_loss_is_near_zero_for_confident_right_answers():
    targets = torch.tensor([0, 1, 2])
    assert F1Loss(3)(F.one_hot(targets, 3).float() * 30, targets) < 1e-4


@pytest.mark.parametrize("build, message", [(lambda: FocalLoss(3, gamma=-1), "gamma"),
                                            (lambda: F1Loss(1), "at least 2 classes")])
def test_losses_check_their_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_loss_names_the_choices():
    with pytest.raises(UserError, match="unknown criterion 'mse': expected one of cross_entropy, focal"):
        create_loss("mse", 3)


# Probability targets (MixUp/CutMix) and class weights (--class_weights): harness/train/losses.py's contract.
WEIGHTS = torch.tensor([0.5, 2.0, 1.0])


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("weight", [None, WEIGHTS], ids=["unweighted", "weighted"])
def test_a_one_hot_target_costs_what_its_hard_label_costs(name, weight):
    torch.manual_seed(1)
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    loss = create_loss(name, 3, weight)
    assert torch.isclose(loss(logits, F.one_hot(targets, 3).float()), loss(logits, targets))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_weighted_cross_entropy_is_torchs_on_hard_labels(smoothing):
    """Same value as nn.CrossEntropyLoss(weight, label_smoothing): a weighted mean over the labels' weights."""
    torch.manual_seed(2)
    logits, targets = torch.randn(8, 3), torch.randint(0, 3, (8,))
    name = "label_smoothing" if smoothing else "cross_entropy"
    expected = torch.nn.CrossEntropyLoss(weight=WEIGHTS, label_smoothing=smoothing)(logits, targets)
    assert torch.isclose(create_loss(name, 3, WEIGHTS)(logits, targets), expected)


def test_unweighted_cross_entropy_on_a_mixed_target_is_torchs():
    torch.manual_seed(3)
    logits = torch.randn(4, 3)
    mixed = 0.7 * F.one_hot(torch.tensor([0, 1, 2, 0]), 3) + 0.3 * F.one_hot(torch.tensor([0, 2, 1, 0]), 3)
    assert torch.isclose(create_loss("cross_entropy", 3)(logits, mixed), F.cross_entropy(logits, mixed))


def test_mixed_focal_by_hand():
    """sum_k t_k (1 - p_k)^2 (-log p_k) for one image, t = 0.75 / 0.25 over classes 0 and 1."""
    logits, target = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.75, 0.25, 0.0]])
    p = F.softmax(logits, dim=1)[0]
    expected = -(0.75 * (1 - p[0]) ** 2 * p[0].log() + 0.25 * (1 - p[1]) ** 2 * p[1].log())
    assert torch.isclose(create_loss("focal", 3)(logits, target), expected)


def test_class_weights_move_the_loss_toward_the_weighted_class():
    """Image 0 (class 0) is wrong, image 1 (class 1) is right: weighting class 0 up raises the loss."""
    logits, targets = torch.tensor([[0.0, 3.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([0, 1])
    for name in LOSSES:
        plain = create_loss(name, 3)(logits, targets)
        assert create_loss(name, 3, [4.0, 1.0, 1.0])(logits, targets) > plain, name


def test_weighted_f1_is_the_weighted_mean_of_the_class_f1s():
    logits, targets = torch.tensor([[30.0, 0, 0], [0, 30.0, 0], [0, 30.0, 0]]), torch.tensor([0, 1, 2])
    # per-class F1 on (near) hard predictions: class 0 1, class 1 2/3, class 2 0
    expected = 1 - (0.5 * 1 + 2.0 * 2 / 3 + 1.0 * 0) / 3.5
    assert torch.isclose(create_loss("f1", 3, WEIGHTS)(logits, targets), torch.tensor(expected), atol=1e-5)


def test_a_target_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\[B, 3\] probabilities"):
        create_loss("cross_entropy", 3)(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="2 class weights for 3 classes"):
        create_loss("focal", 3, [1.0, 2.0])


# Loss mixes: '+' joins registry names, --loss_weights weighs them.
PAIRS = ["+".join(pair) for pair in itertools.combinations(LOSSES, 2)]


@pytest.mark.parametrize("mix", PAIRS)
@pytest.mark.parametrize("weight", [None, WEIGHTS], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("mixed", [False, True], ids=["labels", "probabilities"])
def test_a_mix_is_the_weighted_sum_of_its_parts(mix, weight, mixed):
    """Class weights and MixUp's probability targets reach every part."""
    torch.manual_seed(4)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    targets = 0.7 * F.one_hot(labels, 3) + 0.3 * F.one_hot(labels.flip(0), 3) if mixed else labels
    first, second = mix.split("+")
    expected = 0.6 * create_loss(first, 3, weight)(logits, targets) + 0.4 * create_loss(second, 3, weight)(logits,
                                                                                                          targets)
    assert torch.isclose(create_loss(mix, 3, weight, "0.6,0.4")(logits, targets), expected)


@pytest.mark.parametrize("weights, expected", [("", [0.5, 0.5]), ("3,2", [0.6, 0.4]), ("1,0", [1.0, 0.0])])
def test_mix_weights_are_scaled_to_sum_to_one_and_equal_by_default(weights, expected):
    assert loss_mix("focal+f1", weights) == (["focal", "f1"], pytest.approx(expected))


def test_one_loss_is_the_registry_loss_itself():
    assert type(create_loss("focal", 3, loss_weights="2")) is FocalLoss


@pytest.mark.parametrize("criterion, weights, message", [
    ("focal+mse", "", "unknown criterion 'mse' in 'focal+mse': expected one of cross_entropy, focal, label_smoothing, "
                      "f1, or several joined by '+' (e.g. focal+f1)"),
    ("focal+f1", "0.6", "loss_weights '0.6' has 1 weight for the 2 parts of criterion 'focal+f1': give one per part"),
    ("focal", "0.5,0.5", "loss_weights '0.5,0.5' has 2 weights for the 1 part of criterion 'focal'"),
    ("focal+f1", "-1,2", "loss_weights '-1,2': weights must be finite, 0 or more, and not all 0"),
    ("focal+f1", "0,0", "loss_weights '0,0': weights must be finite, 0 or more, and not all 0"),
    ("focal+f1", "a,b", "loss_weights 'a,b': expected comma-separated numbers, e.g. 0.6,0.4"),
    ("focal+focal", "", "criterion 'focal+focal' names a loss twice"),
])
def test_a_bad_mix_ends_in_one_line(criterion, weights, message):
    with pytest.raises(UserError) as caught:
        loss_mix(criterion, weights)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
