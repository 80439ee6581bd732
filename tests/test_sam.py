"""SAM and ASAM (harness/train/sam.py) through the training pass: the step by hand, batch norm's statistics moving
once per step, fp16's grad scaler, bf16 autocast, the state a checkpoint keeps."""
import copy

import pytest
import torch
from torch import nn

from harness.train.optim import create_optimizer, create_scheduler
from harness.train.passes import TrainStep, train_one_epoch
from harness.train.precision import Precision
from harness.train.sam import VARIANTS

CPU = Precision(torch.device("cpu"))
HEADS = {"multi": 3}


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3))


def batches(count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 3, 8, 8, generator=generator), torch.tensor([[0], [1], [2], [0]]))
            for _ in range(count)]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision = CPU,
          scaler: torch.amp.GradScaler | None = None, data=None, loss_factor: float = 1.0) -> None:
    def criterion(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss_factor * nn.functional.cross_entropy(logits, labels)

    step = TrainStep(HEADS, {"multi": criterion}, optimizer, lambda images: images, precision, scaler)
    train_one_epoch(model, data if data is not None else batches(), step)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_step_is_the_base_step_taken_with_the_gradient_at_the_ascended_weights(variant):
    """One weight vector, loss 0.5 ||A w - b||^2, plain SGD: w' = w - lr grad(w + e), e = rho T^2 g / ||T g||."""
    a, b = torch.tensor([[2.0, 0.5], [0.0, 1.0]]), torch.tensor([1.0, -1.0])
    w = nn.Parameter(torch.tensor([0.3, -0.7]))
    rho, lr = 0.1, 0.5
    optimizer = create_optimizer(variant, [w], lr=lr, momentum=0.0, sam_base="sgd", sam_rho=rho)

    def grad(at: torch.Tensor) -> torch.Tensor:
        return a.T @ (a @ at - b)

    def closure() -> torch.Tensor:
        loss = 0.5 * ((a @ w - b) ** 2).sum()
        loss.backward()
        return loss

    start = w.detach().clone()
    closure()
    optimizer.step(closure)
    g = grad(start)
    t = start.abs() if VARIANTS[variant]["adaptive"] else torch.ones(2)
    ascended = start + rho * t ** 2 * g / torch.linalg.vector_norm(t * g)
    assert torch.allclose(w.detach(), start - lr * grad(ascended), atol=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_batch_norm_statistics_move_once_per_step(variant):
    """The second pass (at the ascended weights) leaves the running statistics and the batch count alone: after
    one step they are those of one training forward pass at the starting weights."""
    model, reference = bn_model(), bn_model()
    (images, _), = batches(1)
    reference.train()
    reference(images)
    train(model, create_optimizer(variant, model.parameters(), lr=0.01), data=batches(1))
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(model.state_dict()[key], reference.state_dict()[key]), key
    assert model[1].momentum == 0.1 and model[1].num_batches_tracked is not None  # restored after the pass


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_grad_scaler_gives_the_steps_taken_without_it(variant):
    """fp16's scaler multiplies the losses by 1024: unscaled before the ascent and before the base step, the weights
    follow the unscaled run's."""
    plain, scaled = bn_model(), bn_model()
    train(plain, create_optimizer(variant, plain.parameters(), lr=0.01))
    train(scaled, create_optimizer(variant, scaled.parameters(), lr=0.01),
          scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    for key, value in plain.state_dict().items():
        assert torch.allclose(value.float(), scaled.state_dict()[key].float(), atol=1e-5), key
    assert not torch.equal(bn_model()[0].weight, plain[0].weight), "the steps changed nothing"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_overflowing_step_is_skipped_without_nan(variant):
    """A scale so large that the scaled loss overflows (a loss of about 100 times 2^126): the scaler skips the step
    and lowers the scale; the weights stay as they were and batch norm's statistics stay finite (the ascent is 0,
    not NaN)."""
    model = bn_model()
    before = copy.deepcopy(model[0].weight.detach())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 126)
    train(model, create_optimizer(variant, model.parameters(), lr=0.01), scaler=scaler, data=batches(1),
          loss_factor=100.0)
    assert torch.equal(model[0].weight.detach(), before)
    assert torch.isfinite(model[1].running_mean).all() and torch.isfinite(model[1].running_var).all()
    assert scaler.get_scale() == 2.0 ** 125


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bf16_autocast_trains(variant):
    model = bn_model()
    train(model, create_optimizer(variant, model.parameters(), lr=0.01), Precision(torch.device("cpu"),
                                                                                    torch.bfloat16))
    assert all(torch.isfinite(value.float()).all() for value in model.state_dict().values())
    assert not torch.equal(bn_model()[0].weight, model[0].weight)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no steps here
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_state_is_the_base_optimisers_and_a_loaded_one_still_follows_the_schedule(variant):
    """last.pt keeps optimizer.state_dict(): the base's moments and the groups' rho. A scheduler built before a
    resume loads the state must still reach the base optimiser's learning rate."""
    model = bn_model()
    optimizer = create_optimizer(variant, model.parameters(), lr=0.01, sam_base="adam")
    train(model, optimizer)
    state = optimizer.state_dict()
    assert state["param_groups"][0]["rho"] == VARIANTS[variant]["rho"] and "exp_avg" in state["state"][0]
    again = create_optimizer(variant, bn_model().parameters(), lr=0.01, sam_base="adam")
    scheduler = create_scheduler("step", again, epochs=20)
    again.load_state_dict(copy.deepcopy(state))
    for _ in range(10):
        scheduler.step()
    assert again.base.param_groups[0]["lr"] == pytest.approx(0.001)
    assert torch.equal(again.base.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def test_a_plain_optimisers_state_loads_with_this_runs_rho():
    """A PBT parent trained with Adam alone, its child with SAM around Adam: the child keeps its own rho."""
    parent = bn_model()
    adam = create_optimizer("adam", parent.parameters(), lr=0.01)
    train(parent, adam)
    child = bn_model()
    optimizer = create_optimizer("sam", child.parameters(), lr=0.01, sam_rho=0.1)
    optimizer.load_state_dict(copy.deepcopy(adam.state_dict()))
    train(child, optimizer)
    assert optimizer.param_groups[0]["rho"] == 0.1 and optimizer.state_dict()["state"][0]["step"] == 6


@pytest.mark.parametrize("variant, rho, expected", [("sam", 0.0, 0.05), ("asam", 0.0, 2.0), ("sam", 0.2, 0.2)])
def test_rho_defaults_per_variant(variant, rho, expected):
    optimizer = create_optimizer(variant, bn_model().parameters(), lr=0.01, sam_rho=rho)
    assert optimizer.param_groups[0]["rho"] == expected


def test_a_step_without_its_closure_is_refused():
    optimizer = create_optimizer("sam", bn_model().parameters(), lr=0.01)
    with pytest.raises(ValueError, match="needs the closure"):
        optimizer.step()
