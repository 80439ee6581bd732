import numpy as np
import pytest

from harness.data.layouts import load_train
from harness.data.split import allocate, split_groups, split_indices


def people(n_per_stratum=(10, 7, 13, 4, 9, 5)):
    return np.repeat(np.arange(len(n_per_stratum)), n_per_stratum)


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.33, 0.5])
def test_the_ratio_is_kept_overall_and_per_stratum(ratio):
    strata = people()
    is_val = split_groups(strata, ratio, seed=1)
    assert is_val.sum() == int(len(strata) * ratio + 0.5)
    for stratum in np.unique(strata):
        members = strata == stratum
        assert abs(is_val[members].sum() - members.sum() * ratio) < 1


def test_allocation_hands_leftovers_to_the_largest_remainders():
    assert allocate(np.array([10, 10, 10]), 0.25).tolist() == [3, 3, 2]  # 7.5 -> 8 in all, earlier strata first
    assert allocate(np.array([4, 6]), 0.5).tolist() == [2, 3]


def test_seeded_and_without_replacement():
    strata = people()
    first, again = split_groups(strata, 0.2, seed=7), split_groups(strata, 0.2, seed=7)
    assert (first == again).all()
    assert not (first == split_groups(strata, 0.2, seed=8)).all()


def test_no_validation_when_the_ratio_is_zero():
    assert not split_groups(people(), 0.0, seed=0).any()


def test_no_person_is_on_both_sides(demo_dir):
    data = load_train(demo_dir)
    train_idx, val_idx = split_indices(data.groups, data.group_strata, 0.25, seed=42)
    assert set(data.groups[train_idx]).isdisjoint(data.groups[val_idx])
    assert len(train_idx) + len(val_idx) == len(data.paths)
    val_people = set(data.groups[val_idx])
    assert len(val_people) == int(len(set(data.groups)) * 0.25 + 0.5)
    # every validation person brings all seven photos
    assert all((data.groups[val_idx] == person).sum() == 7 for person in val_people)


def test_the_same_people_validate_whatever_the_task(demo_dir):
    """The split never looks at the task: that is what lets the ensemble compare trials of different tasks."""
    data = load_train(demo_dir)
    _, val_idx = split_indices(data.groups, data.group_strata, 0.25, seed=42)
    val_ids = {task: [data.paths[i] for i in val_idx] for task in ("mask", "gender", "age", "multi")}
    assert len({tuple(ids) for ids in val_ids.values()}) == 1


def test_single_label_sets_split_by_image_stratified_by_class():
    labels = np.array([0] * 20 + [1] * 10)
    train_idx, val_idx = split_indices(np.arange(30), labels, 0.2, seed=0)
    assert len(val_idx) == 6 and (labels[val_idx] == 0).sum() == 4
