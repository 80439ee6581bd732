"""--ema_decay (harness/train/averaging.py): the average by hand, and where checkpoints keep it."""
import numpy as np
import pytest
import torch
from torch import nn

from harness.data.batches import ImageSet, make_loader
from harness.train.averaging import WARMUP_POWER, WeightAverage, ema_enabled
from harness.train.checkpoint import BEST, LAST, Checkpointer, TrainingState, load, weights_for_prediction


def constant_model(value: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def set_weight(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)


def test_the_average_by_hand():
    """Step 1 copies the weights; step s after that keeps d = min(D, 1 - s^(-3/4)) of the average."""
    model = constant_model(0.0)
    average = WeightAverage(model, decay=0.5)
    set_weight(model, 4.0)
    average.update(model)
    assert average.module.weight.item() == 4.0
    set_weight(model, 8.0)
    average.update(model)
    d = min(0.5, 1 - 2 ** -WARMUP_POWER)  # 0.405: the warm-up, below D
    assert np.isclose(average.module.weight.item(), d * 4 + (1 - d) * 8)
    for _ in range(200):  # long after the warm-up the decay is D itself
        average.update(model)
    set_weight(model, 0.0)
    average.update(model)
    assert np.isclose(average.module.weight.item(), 0.5 * 8.0)


def test_the_average_restarts_and_round_trips():
    model = constant_model(1.0)
    average = WeightAverage(model, decay=0.9)
    for _ in range(3):
        average.update(model)
    copy = WeightAverage(constant_model(5.0), decay=0.9)
    copy.load_state_dict(average.state_dict())
    assert copy.steps == 3 and copy.module.weight.item() == 1.0
    copy.restart_from(constant_model(7.0))
    assert copy.steps == 0 and copy.module.weight.item() == 7.0


@pytest.mark.parametrize("decay, on", [(0.0, False), (0.999, True)])
def test_zero_turns_it_off(decay, on):
    assert ema_enabled(decay) is on


def training_state(model: nn.Module, average: WeightAverage | None) -> TrainingState:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(ImageSet(np.zeros((4, 1, 1, 1), np.uint8), np.arange(4), np.zeros(4)), 2, True, 0, 0,
                         False)
    return TrainingState(model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 1), None, loader, average)


def test_checkpoints_hold_the_average_and_prediction_reads_it(tmp_path):
    model = constant_model(2.0)
    average = WeightAverage(model, decay=0.9)
    average.update(model)
    set_weight(model, 3.0)
    record = {"epoch": 1, "val_acc": 0.5}
    for mode in ("best", "last"):
        folder = tmp_path / mode
        folder.mkdir()
        Checkpointer(folder, mode, "val_acc").save(training_state(model, average), 1, None, [record])
        data = load(folder / (BEST if mode == "best" else LAST))
        assert data["model"]["weight"].item() == 3.0 and data["ema"]["weights"]["weight"].item() == 2.0
        state, epoch = weights_for_prediction(folder)
        assert state["weight"].item() == 2.0 and epoch == 1, "prediction uses the average"
    resumed = WeightAverage(constant_model(0.0), decay=0.9)
    Checkpointer(tmp_path / "last", "last", "val_acc").resume(training_state(constant_model(0.0), resumed))
    assert resumed.module.weight.item() == 2.0 and resumed.steps == 1


def test_a_checkpoint_from_before_the_average_still_loads(tmp_path):
    model = constant_model(3.0)
    Checkpointer(tmp_path, "last", "val_acc").save(training_state(model, None), 1, None, [{"epoch": 1}])
    data = load(tmp_path / LAST)
    assert "ema" not in data
    assert weights_for_prediction(tmp_path)[0]["weight"].item() == 3.0
    # resumed with --ema_decay on: the average starts at the resumed weights
    fresh = constant_model(0.0)
    average = WeightAverage(fresh, decay=0.9)
    Checkpointer(tmp_path, "last", "val_acc").resume(training_state(fresh, average))
    assert average.module.weight.item() == 3.0 and average.steps == 0
