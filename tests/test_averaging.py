"""--ema_decay (harness/train/averaging.py): the average by hand, and where checkpoints keep it."""
import numpy as np
import pytest
import torch
from fit_helpers import loop_with, tiny_fit
from torch import nn

from harness.outputs.run_folder import RunFolder
from harness.train.averaging import WARMUP_POWER, WeightAverage, ema_enabled
from harness.train.checkpoint import BEST, LAST, Checkpoint, load, weights_for_prediction


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


def test_checkpoints_hold_the_average_and_prediction_reads_it(tmp_path):
    model = constant_model(2.0)
    average = WeightAverage(model, decay=0.9)
    average.update(model)
    set_weight(model, 3.0)
    record = {"epoch": 1, "val_acc": 0.5}
    for mode in ("best", "last"):
        run = RunFolder(tmp_path, "exp", mode)
        checkpoint = Checkpoint(run, mode, "val_acc")
        loop_with([checkpoint], tiny_fit(model, average), [record])
        checkpoint.record_epoch(record)
        data = load(run.path / (BEST if mode == "best" else LAST))
        weights = data if mode == "best" else data["fit"]
        assert weights["model"]["weight"].item() == 3.0 and weights["average"]["weights"]["weight"].item() == 2.0
        state, epoch = weights_for_prediction(run.path)
        assert state["weight"].item() == 2.0 and epoch == 1, "prediction uses the average"
    resumed = WeightAverage(constant_model(0.0), decay=0.9)
    checkpoint = Checkpoint(RunFolder(tmp_path, "exp", "last"), "last", "val_acc")
    loop_with([checkpoint], tiny_fit(constant_model(0.0), resumed, first_epoch=2))
    checkpoint.read_last()
    checkpoint.before_split()
    assert resumed.module.weight.item() == 2.0 and resumed.steps == 1


def test_a_checkpoint_without_an_average_resumed_with_one_starts_it_at_the_weights(tmp_path):
    run = RunFolder(tmp_path, "exp", "run")
    checkpoint = Checkpoint(run, "last", "val_acc")
    loop_with([checkpoint], tiny_fit(constant_model(3.0)), [{"epoch": 1}])
    checkpoint.record_epoch({"epoch": 1})
    assert load(run.path / LAST)["fit"]["average"] is None
    assert weights_for_prediction(run.path)[0]["weight"].item() == 3.0
    fresh = constant_model(0.0)
    average = WeightAverage(fresh, decay=0.9)
    loop_with([checkpoint], tiny_fit(fresh, average, first_epoch=2))
    checkpoint.read_last()
    checkpoint.before_split()
    assert average.module.weight.item() == 3.0 and average.steps == 0
