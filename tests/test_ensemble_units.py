"""The ensemble's pure parts, with hand-computed expectations: tasks, blending, members, soft CSV reading."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.alignment import aligned
from ensemble.blending import blend, vote
from ensemble.members import expand, split_weight, valid_pair
from ensemble.tasks import answer_from_tasks, labels_for_task, probs_for_task, vote_plan
from ensemble_helpers import write_soft
from harness.atomic import write_csv
from harness.errors import UserError
from harness.outputs.soft_csv import read_soft_csv, softmax

# --- tasks -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("multi, mask, gender, age", [
    (0, 0, 0, 0), (2, 0, 0, 2), (4, 0, 1, 1), (7, 1, 0, 1), (11, 1, 1, 2), (12, 2, 0, 0), (17, 2, 1, 2),
])
def test_multi_class_decodes_to_mask_gender_age(multi, mask, gender, age):
    decoded = [int(labels_for_task(np.array([multi]), "multi", task)[0]) for task in ("mask", "gender", "age")]
    assert decoded == [mask, gender, age]
    assert int(answer_from_tasks({"mask": mask, "gender": gender, "age": age})) == multi


def test_every_multi_class_round_trips():
    classes = np.arange(18)
    parts = {task: labels_for_task(classes, "multi", task) for task in ("mask", "gender", "age")}
    np.testing.assert_array_equal(answer_from_tasks(parts), classes)


def test_marginals_sum_the_multi_classes_of_each_task_label():
    probs = np.zeros((1, 18))
    probs[0, 7] = 0.5   # mask 1, gender 0, age 1
    probs[0, 17] = 0.5  # mask 2, gender 1, age 2
    np.testing.assert_allclose(probs_for_task(probs, "multi", "mask"), [[0, 0.5, 0.5]])
    np.testing.assert_allclose(probs_for_task(probs, "multi", "gender"), [[0.5, 0.5]])
    np.testing.assert_allclose(probs_for_task(probs, "multi", "age"), [[0, 0.5, 0.5]])
    own = np.array([[0.2, 0.8]])
    assert probs_for_task(own, "gender", "gender") is own


@pytest.mark.parametrize("groups, expected", [
    ({"multi": ["m"]}, {"multi": ["m"]}),
    ({"mask": ["k"], "gender": ["g"], "age": ["a"]}, {"mask": ["k"], "gender": ["g"], "age": ["a"]}),
    ({"mask": ["k"], "multi": ["m"]}, {"mask": ["k", "m"], "gender": ["m"], "age": ["m"]}),
    ({"mask": ["k"], "gender": ["g"], "age": ["a"], "multi": ["m"]},
     {"mask": ["k", "m"], "gender": ["g", "m"], "age": ["a", "m"]}),
])
def test_vote_plan_joins_multi_into_every_task(groups, expected):
    assert vote_plan(groups) == expected


@pytest.mark.parametrize("groups, needles", [
    ({"mask": ["k"], "gender": ["g"]}, ["task 'age'", "--age or --multi"]),
    ({}, ["no input CSVs"]),
])
def test_vote_plan_names_the_missing_task(groups, needles):
    with pytest.raises(UserError) as error:
        vote_plan(groups)
    assert all(needle in str(error.value) for needle in needles)


# --- blending ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, mean, expected", [
    ([1, 1], "arithmetic", [0.74, 0.26]),
    ([1, 3], "arithmetic", [(0.5 + 3 * 0.98) / 4, (0.5 + 3 * 0.02) / 4]),
    # geometric: sqrt(0.5 * 0.98) = 0.7 and sqrt(0.5 * 0.02) = 0.1, renormalised
    ([1, 1], "geometric", [0.875, 0.125]),
])
def test_blend_is_the_weighted_mean_renormalised(weights, mean, expected):
    probs = [np.array([[0.5, 0.5]]), np.array([[0.98, 0.02]])]
    np.testing.assert_allclose(blend(probs, weights, mean), [expected])


def test_geometric_mean_lets_a_confident_no_outvote_a_lukewarm_yes():
    sure = np.array([[0.7, 0.3, 0.0]])
    other = np.array([[0.001, 0.3, 0.699]])
    assert vote(blend([sure, other], [1, 1], "arithmetic"))[0] == 0  # (0.3505, 0.3, 0.3495)
    assert vote(blend([sure, other], [1, 1], "geometric"))[0] == 1   # a zero probability vetoes class 2, 0.001 class 0


def test_blend_rows_sum_to_one_even_from_rounded_inputs():
    probs = [np.array([[0.3334, 0.3333, 0.3334]]), np.array([[0.1, 0.2, 0.7]])]
    for mean in ("arithmetic", "geometric"):
        np.testing.assert_allclose(blend(probs, [1, 2], mean).sum(axis=1), [1.0])


def test_softmax_and_vote():
    np.testing.assert_allclose(softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]])), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_array_equal(vote(np.array([[0.2, 0.8], [0.5, 0.5]])), [1, 0])  # ties: the lowest class


# --- members -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argument, expected", [
    ("a.csv", ("a.csv", None)),
    ("a.csv:2", ("a.csv", 2.0)),
    ("runs/*/sub*.csv:0.5", ("runs/*/sub*.csv", 0.5)),
    ("a.csv:1e-1", ("a.csv", 0.1)),
    ("C:\\runs\\a.csv", ("C:\\runs\\a.csv", None)),
    ("odd:name.csv", ("odd:name.csv", None)),
    ("dir:1/a.csv", ("dir:1/a.csv", None)),
])
def test_split_weight(argument, expected):
    assert split_weight(argument) == expected


@pytest.mark.parametrize("argument", ["a.csv:0", "a.csv:-1", "a.csv:x", "a.csv:", "a.csv:nan", "a.csv:inf"])
def test_split_weight_refuses_what_is_not_a_positive_weight(argument):
    with pytest.raises(UserError, match="is not a positive number"):
        split_weight(argument)


def test_expand_sorts_glob_matches_and_weights_each(tmp_path):
    for name in ("b_soft.csv", "a_soft.csv", "c.txt"):
        (tmp_path / name).write_text("x")
    members = expand(f"{tmp_path}/*_soft.csv:2.5", "mask")
    assert [(m.path.name, m.task, m.weight) for m in members] == [("a_soft.csv", "mask", 2.5),
                                                                  ("b_soft.csv", "mask", 2.5)]


def test_valid_pair_is_named_after_the_eval_csv(tmp_path):
    path = tmp_path / "run" / "submission3_0.9312_0.2100_soft.csv"
    assert valid_pair(path) == tmp_path / "run" / "valid3_0.9312_0.2100_soft.csv"
    with pytest.raises(UserError, match="does not start with 'submission'"):
        valid_pair(tmp_path / "mine.csv")


# --- reading and aligning ----------------------------------------------------------------------------------------

def test_messy_csv_reads_by_column_name_and_aligns_by_image_id(tmp_path):
    ids = ["a", "b", "c"]
    probs = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]])
    clean = read_soft_csv(write_soft(tmp_path / "clean.csv", ids, probs))
    messy = read_soft_csv(write_soft(tmp_path / "messy.csv", ids, probs, columns=["2", "Unnamed: 0", "0", "ans",
                                                                                   "ImageID", "1"],
                                     extra={"Unnamed: 0": [0, 1, 2], "ans": [9, 9, 9]}, shuffle=3))
    assert list(messy.ids) != ids  # really shuffled
    np.testing.assert_allclose(aligned(messy, clean.ids, clean.path).probs, probs)


def test_softmax_flag_turns_logits_into_probabilities(tmp_path):
    path = write_soft(tmp_path / "logits.csv", ["a"], [[0.0, np.log(3.0)]])
    np.testing.assert_allclose(read_soft_csv(path, apply_softmax=True).probs, [[0.25, 0.75]], rtol=1e-6)


def test_validation_labels_are_read(tmp_path):
    path = write_soft(tmp_path / "valid.csv", ["a", "b"], [[0.9, 0.1], [0.2, 0.8]], labels=[0, 1])
    np.testing.assert_array_equal(read_soft_csv(path, labelled=True).labels, [0, 1])


def test_aligned_refuses_a_different_id_set(tmp_path):
    one = read_soft_csv(write_soft(tmp_path / "one.csv", ["a", "b"], [[0.5, 0.5]] * 2))
    two = read_soft_csv(write_soft(tmp_path / "two.csv", ["a", "z"], [[0.5, 0.5]] * 2))
    with pytest.raises(UserError, match=r"two.csv: ImageIDs differ from .*one.csv: 1 missing \(e.g. 'b'\), "
                                        r"1 extra \(e.g. 'z'\)"):
        aligned(two, one.ids, one.path)
    assert aligned(one, pd.Index(["b", "a"]), one.path).ids.tolist() == ["b", "a"]


# --- writing -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, printed", [
    (0.23984613, "0.2398461"), (0.1, "0.1"), (1.0, "1"), (0.0, "0"), (0.999999987, "1"),
    (1.23456789e-9, "1.234568e-09"), (5.5555556e-5, "5.555556e-05"),
])
def test_blended_probabilities_are_written_with_7_significant_digits(value, printed, tmp_path):
    write_csv(pd.DataFrame({"ImageID": ["a"], "0": [value]}), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[1] == f"a,{printed}"
