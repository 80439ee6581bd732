"""Optimisers and schedules: every registered name, fused kernels doing the default implementation's arithmetic."""
import copy

import pytest
import torch

from harness.errors import UserError
from harness.train.optim import OPTIMIZERS, SCHEDULERS, create_optimizer, create_scheduler, needs_closure


def small_model() -> torch.nn.Module:
    # No bias before the BatchNorm: its gradient would be rounding noise, which Adam's normalised step turns into
    # +-lr in a direction that no two implementations need agree on.
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


def train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    """As harness/train/passes.py steps: SAM and ASAM get a closure that evaluates the batch again."""
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        inputs = torch.randn(4, 3, 8, 8, generator=generator)

        def loss(inputs=inputs) -> torch.Tensor:
            value = torch.nn.functional.cross_entropy(model(inputs), torch.tensor([0, 1, 2, 0]))
            value.backward()
            return value

        optimizer.zero_grad()
        loss()
        optimizer.step(loss) if needs_closure(optimizer) else optimizer.step()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_steps_match_the_default_implementation(name):
    fused_model, plain_model = small_model(), small_model()
    fused = create_optimizer(name, fused_model.parameters(), lr=0.01, weight_decay=0.01, fused=True)
    plain = create_optimizer(name, plain_model.parameters(), lr=0.01, weight_decay=0.01, fused=False)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    train_steps(fused_model, fused)
    train_steps(plain_model, plain)
    for (key, a), b in zip(fused_model.state_dict().items(), plain_model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), key
    changed = small_model().state_dict()
    assert not torch.equal(changed["0.weight"], fused_model.state_dict()["0.weight"]), "the steps changed nothing"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_fused_optimiser_state_resumes_in_a_new_one(name):
    """last.pt keeps the optimiser's state_dict: a resumed run's fused optimiser continues where it stopped."""
    model = small_model()
    optimizer = create_optimizer(name, model.parameters(), lr=0.01)
    train_steps(model, optimizer, 2)
    copied = copy.deepcopy(model)
    again = create_optimizer(name, copied.parameters(), lr=0.01)
    again.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as torch.save and torch.load would
    train_steps(model, optimizer, 1)
    train_steps(copied, again, 1)
    for a, b in zip(model.state_dict().values(), copied.state_dict().values()):
        assert torch.equal(a, b)


def test_parameters_that_cannot_be_fused_get_the_default_implementation():
    weights = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    integer = torch.zeros(2, dtype=torch.int64)  # torch refuses fused kernels for anything not floating point
    assert create_optimizer("adam", [weights], lr=0.1).defaults["fused"] is True
    assert not create_optimizer("sgd", [integer], lr=0.1, momentum=0).defaults["fused"]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_steps_per_epoch(name):
    optimizer = create_optimizer("sgd", small_model().parameters(), lr=0.1)
    scheduler = create_scheduler(name, optimizer, epochs=20)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1)
    expected_after_11 = {"step": 0.01, "cosine": 0.05 * (1 + torch.cos(torch.tensor(11 / 20 * torch.pi)).item()),
                         "none": 0.1}[name]
    assert rates[11] == pytest.approx(expected_after_11)


def test_unknown_names_end_in_one_line():
    with pytest.raises(UserError, match="unknown optimizer 'lamb': expected one of adam, adamw, sgd"):
        create_optimizer("lamb", small_model().parameters(), lr=0.1)
    with pytest.raises(UserError, match="unknown scheduler 'poly'"):
        create_scheduler("poly", create_optimizer("sgd", small_model().parameters(), lr=0.1), epochs=3)
