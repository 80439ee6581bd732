import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.train.losses import LOSSES, F1Loss, FocalLoss, create_loss


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
    assert torch.isclose(FocalLoss(gamma=0)(logits, targets), F.cross_entropy(logits, targets))


def test_focal_down_weights_easy_images():
    logits = torch.tensor([[4.0, 0.0]])
    targets = torch.tensor([0])
    assert FocalLoss(gamma=2)(logits, targets) < F.cross_entropy(logits, targets) / 100


def test_label_smoothing_by_hand():
    """torch's smoothing: the target is 0.9 + 0.1 / K on the true class and 0.1 / K on each other class."""
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    log_p = F.log_softmax(logits, dim=1)[0]
    expected = -((0.9 + 0.1 / 3) * log_p[0] + 0.1 / 3 * log_p[1] + 0.1 / 3 * log_p[2])
    assert torch.isclose(create_loss("label_smoothing", 3)(logits, targets), expected)


def test_f1_loss_is_near_zero_for_confident_right_answers():
    targets = torch.tensor([0, 1, 2])
    assert F1Loss(3)(F.one_hot(targets, 3).float() * 30, targets) < 1e-4


@pytest.mark.parametrize("build, message", [(lambda: FocalLoss(gamma=-1), "gamma"),
                                            (lambda: F1Loss(1), "at least 2 classes")])
def test_losses_check_their_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_loss_names_the_choices():
    with pytest.raises(UserError, match="unknown criterion 'mse': expected one of cross_entropy, focal"):
        create_loss("mse", 3)
