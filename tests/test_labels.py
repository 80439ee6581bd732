import numpy as np
import pytest

from harness.data.labels import (
    CLASS_NAMES,
    TASKS,
    age_label,
    age_labels,
    gender_label,
    mask_label,
    missing_tasks,
    multi_label,
    split_multi,
)
from harness.errors import UserError


@pytest.mark.parametrize("age, expected", [(18, 0), (29, 0), (30, 1), (45, 1), (59, 1), (60, 2), (75, 2)])
def test_age_groups_follow_the_contest_rule(age, expected):
    assert age_label(age) == expected
    assert age_labels(np.array([age]))[0] == expected


@pytest.mark.parametrize("stem, expected", [("mask1", 0), ("mask5", 0), ("incorrect_mask", 1), ("normal", 2)])
def test_mask_states(stem, expected):
    assert mask_label(stem) == expected


def test_unknown_mask_name_is_a_clear_error():
    with pytest.raises(UserError, match="'mask6' is not a mask state"):
        mask_label("mask6")


@pytest.mark.parametrize("text, expected", [("male", 0), ("female", 1), ("Female", 1), (" male ", 0)])
def test_gender(text, expected):
    assert gender_label(text) == expected


def test_unknown_gender_is_a_clear_error():
    with pytest.raises(UserError, match="'other' is not male or female"):
        gender_label("other")


def test_multi_label_is_mask_times_six_plus_gender_times_three_plus_age():
    assert multi_label(0, 0, 0) == 0
    assert multi_label(1, 1, 2) == 6 + 3 + 2
    assert multi_label(2, 1, 2) == 17
    masks, genders, ages = np.meshgrid(range(3), range(2), range(3), indexing="ij")
    labels = multi_label(masks.ravel(), genders.ravel(), ages.ravel())
    assert sorted(labels) == list(range(18))
    back = split_multi(labels)
    assert all((b == x.ravel()).all() for b, x in zip(back, (masks, genders, ages)))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_names_each_class(task):
    assert len(CLASS_NAMES[task]) == TASKS[task]


def test_demo_data_never_replaces_a_folder_it_did_not_write(tmp_path):
    from harness.data.demo import MARKER, generate

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(UserError, match="is not empty and is not a folder python -m harness.demo_data wrote"):
        generate(mine, people=6, eval_images=1, width=32, height=32)
    assert (mine / "thesis.txt").read_text() == "years of work"
    demo = generate(tmp_path / "demo", people=6, eval_images=1, width=32, height=32)
    assert (demo / MARKER).is_file()
    (demo / "train" / "train.csv").unlink()
    generate(demo, people=6, eval_images=2, width=32, height=32)  # its own folder: its own files rewritten
    assert (demo / "train" / "train.csv").is_file()


@pytest.mark.parametrize("age, expected", [(29, 0), (30, 1), (57, 1), (58, 2), (59, 2), (60, 2)])
def test_old_age_moves_the_oldest_class_down(age, expected):
    """--old_age 58: 58- and 59-year-olds train as 60+ (the contest's rule stays the default)."""
    assert age_label(age, old_age=58) == expected
    assert age_labels(np.array([age]), old_age=58)[0] == expected


@pytest.mark.parametrize("present, missing", [
    ([], []), (["multi"], []), (["mask", "gender", "age"], []), (["mask", "multi"], []),
    (["mask", "gender"], ["age"]), (["gender"], ["mask", "age"])])
def test_a_submission_needs_each_task_voted_on_or_a_multi_csv(present, missing):
    assert missing_tasks(present) == missing
