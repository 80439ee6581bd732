"""Hyperband's and BOHB's TRIAL_BUDGET: a trial trains that many epochs (times --budget_unit)."""
import pytest

from harness.errors import UserError
from harness.params import budget_epochs, parse_params


@pytest.mark.parametrize("budget, unit, epochs", [(1, 1.0, 1), (27, 1.0, 27), (0.333, 3.0, 1), (0.1, 1.0, 1),
                                                  (9, 0.5, 4), (3, 10.0, 30)])
def test_budget_maps_to_whole_epochs(budget, unit, epochs):
    assert budget_epochs(budget, unit) == epochs


def test_trial_budget_overrides_epochs_and_is_checked():
    assert parse_params(["--epochs", "20", "--budget_unit", "2"], {"TRIAL_BUDGET": 3}).epochs == 6
    with pytest.raises(UserError, match="TRIAL_BUDGET must be a number above 0, got 'x'"):
        parse_params([], {"TRIAL_BUDGET": "x"})

