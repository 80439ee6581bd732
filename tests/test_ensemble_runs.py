"""python -m ensemble on run folders (--from), with the --tasks/--models/--top_k filters and --select."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.gathering import best_per_task, count_by_task, gather
from ensemble.members import Member
from ensemble.tasks import labels_for_task
from ensemble_helpers import (
    add_nni_folders,
    assert_user_error,
    make_run,
    noisy_probs,
    read_submission,
    run_cli,
    write_soft,
)

EVAL_IDS = [f"{i:05d}.jpg" for i in range(6)]
VALID_IDS = [f"{i // 7:06d}_female_Asian_30/mask{i % 7}.jpg" for i in range(70)]
CLASSES = {"mask": 3, "gender": 2, "age": 3, "multi": 18}


def experiment(root: Path, seed: int = 0, skills: dict | None = None) -> Path:
    """An NNI experiment of the mask contest: two mask runs (two epochs each), one run of each other task, and a
    run whose folder name says 'age' although it trained gender. Every run validates on the same people."""
    rng = np.random.default_rng(seed)
    multi_labels = rng.integers(0, 18, size=len(VALID_IDS))
    skills = skills or {}
    exp = root / "Xy12abCd"

    def epochs(task: str, count: int = 1) -> dict:
        labels = labels_for_task(multi_labels, "multi", task)
        k = CLASSES[task]
        return {e: (EVAL_IDS, noisy_probs(rng, rng.integers(0, k, 6), k, 1.0), VALID_IDS,
                    noisy_probs(rng, labels, k, skills.get(task, 1.0)), labels) for e in range(3, 3 + count)}

    make_run(exp, "mask", "resnet18", "t1", epochs("mask", 2))
    make_run(exp, "mask", "ecaresnet50t", "t2", epochs("mask", 2))
    make_run(exp, "gender", "resnet18", "t3", epochs("gender"), folder="age_resnet18_16_focal_0.0001_t3")
    make_run(exp, "age", "resnet18", "t4", epochs("age"))
    make_run(exp, "multi", "ecaresnet50t", "t5", epochs("multi"))
    add_nni_folders(exp)
    return exp


def test_gather_groups_by_the_task_in_params_json(tmp_path):
    exp = experiment(tmp_path)
    members = gather([exp])
    assert count_by_task(members) == "mask 4, gender 1, age 1, multi 1"
    assert {m.task for m in members if m.path.parent.name.startswith("age_resnet18_16_focal_0.0001_t3")} == {"gender"}
    assert count_by_task(gather([exp], tasks=["mask", "multi"], models=["ecaresnet50t"])) == "mask 2, multi 1"


@pytest.mark.parametrize("roots", [["Xy12abCd"], ["."], ["Xy12abCd/multi_ecaresnet50t_16_focal_0.0001_t5", "."],
                                   [".", "Xy12abCd"]])
def test_from_takes_a_run_an_experiment_or_the_whole_root_once(tmp_path, roots):
    experiment(tmp_path)
    members = gather([tmp_path / r for r in roots])
    assert count_by_task(members) == "mask 4, gender 1, age 1, multi 1"
    assert len(members) == len({m.path.resolve() for m in members})


def test_best_per_task_ranks_members_without_a_score_last():
    members = [Member(Path(name), task) for name, task in
               [("a", "mask"), ("b", "mask"), ("c", "mask"), ("d", "gender"), ("e", "gender")]]
    scores = [0.5, None, 0.9, None, 0.1]
    assert [m.path.name for m in best_per_task(members, scores, 1)] == ["c", "e"]
    assert [m.path.name for m in best_per_task(members, scores, 5)] == ["c", "a", "b", "e", "d"]


def test_from_blends_everything_gathered_and_says_what(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, stdout, _ = run_cli(["--from", exp, "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0
    assert f"gathered 7 eval CSVs from 5 runs under {exp}: mask 4, gender 1, age 1, multi 1" in stdout
    assert len(read_submission(tmp_path / "sub.csv")) == len(EVAL_IDS)


def test_blended_outputs_written_into_a_run_folder_are_not_gathered_later(tmp_path, capsys):
    exp = experiment(tmp_path)
    run = exp / "mask_resnet18_16_focal_0.0001_t1"
    assert run_cli(["--from", exp, "-o", run / "submission.csv"], capsys)[0] == 0
    assert (run / "submission_mask_soft.csv").exists()
    assert count_by_task(gather([exp])) == "mask 4, gender 1, age 1, multi 1"


def test_tasks_and_models_filters(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, stdout, _ = run_cli(["--from", exp, "--tasks", "mask,multi", "--models", "ecaresnet50t",
                               "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0 and "from 2 runs" in stdout and "mask 2, multi 1" in stdout
    code, _, err = run_cli(["--from", exp, "--tasks", "mask,gender", "-o", tmp_path / "no.csv"], capsys)
    assert_user_error(code, err, "no predictions for task 'age'")
    code, _, err = run_cli(["--from", exp, "--models", "resnet18,effnet_b9", "-o", tmp_path / "no.csv"], capsys)
    assert_user_error(code, err, "--models: no run used effnet_b9 (models found: ecaresnet50t, resnet18)")
    assert not (tmp_path / "no.csv").exists()


def test_from_and_explicit_csvs_vote_together(tmp_path, capsys):
    exp = experiment(tmp_path)
    extra = write_soft(tmp_path / "extra_age.csv", EVAL_IDS, np.tile([.2, .3, .5], (6, 1)))
    code, stdout, _ = run_cli(["--from", exp, "--tasks", "mask,gender", "--age", extra, "-o", tmp_path / "s.csv"],
                              capsys)
    assert code == 0 and "blending (arithmetic mean): mask 4, gender 1, age 1" in stdout
    assert {ans % 3 for ans in read_submission(tmp_path / "s.csv").values()} == {2}  # age from extra_age.csv


def test_top_k_keeps_the_best_validation_scores(tmp_path, capsys):
    exp = tmp_path / "exp"
    labels = np.array([0, 1, 2, 0])
    right, half = np.eye(3)[labels], np.eye(3)[[0, 1, 0, 1]]  # accuracy 1.0 and 0.5
    eval_probs = {name: np.tile(p, (len(EVAL_IDS), 1)) for name, p in
                  (("good", [.6, .3, .1]), ("poor", [.1, .3, .6]), ("blind", [.1, .8, .1]))}
    make_run(exp, "mask", "m", "good", {1: (EVAL_IDS, eval_probs["good"], VALID_IDS[:4], right, labels)})
    make_run(exp, "mask", "m", "poor", {1: (EVAL_IDS, eval_probs["poor"], VALID_IDS[:4], half, labels)})
    make_run(exp, "mask", "m", "blind", {1: (EVAL_IDS, eval_probs["blind"], None, None, None)})
    make_run(exp, "multi", "m", "all", {1: (EVAL_IDS, np.full((6, 18), 1 / 18), None, None, None)})

    code, stdout, _ = run_cli(["--from", exp, "--tasks", "mask,multi", "--top_k", "1", "--metric", "accuracy",
                               "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0
    assert "--top_k 1: kept mask 1, multi 1" in stdout
    assert "note: 2 CSVs have no validation pair and rank last for --top_k" in stdout and "1 of them kept" in stdout
    mask = pd.read_csv(tmp_path / "sub_mask_soft.csv")  # 'good' with the uniform multi's marginals [1/3 1/3 1/3]
    np.testing.assert_allclose(mask[["0", "1", "2"]].iloc[0], [(.6 + 1 / 3) / 2, (.3 + 1 / 3) / 2, (.1 + 1 / 3) / 2],
                               atol=1e-6)

    code, stdout, _ = run_cli(["--from", exp, "--tasks", "mask,multi", "--top_k", "2", "--metric", "accuracy",
                               "-o", tmp_path / "sub2.csv"], capsys)
    assert code == 0 and "kept mask 2, multi 1" in stdout and "1 of them kept" in stdout  # the multi


def test_select_hand_traced_on_a_plain_contest(tmp_path, capsys):
    # Validation: A right on rows 0-2, B on 0, 1, 3, C says 1 always. Selection: A, then B (accuracy 1.0).
    exp = tmp_path / "exp"
    labels = np.array([0, 0, 1, 1])
    valid = {"A": [[.9, .1], [.9, .1], [.2, .8], [.6, .4]], "B": [[.9, .1], [.9, .1], [.6, .4], [.2, .8]],
             "C": [[.4, .6]] * 4}
    evals = {"A": [[.9, .1], [.3, .7]], "B": [[.2, .8], [.4, .6]], "C": [[.1, .9], [.1, .9]]}
    for name in "ABC":
        make_run(exp, "multi", "m", name, {1: (["x", "y"], np.array(evals[name]), VALID_IDS[:4],
                                               np.array(valid[name]), labels)})
    code, stdout, _ = run_cli(["--from", exp, "--select", "--rounds", "6", "--metric", "accuracy",
                               "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0, stdout
    assert "multi: ensemble accuracy 1.0000 vs best single 0.7500 (multi_m_16_focal_0.0001_A/submission1" in stdout
    picks = re.findall(r"^\s+(\d+)/(\d+)\s+multi_m_16_focal_0.0001_(\w)/", stdout, flags=re.M)
    assert picks == [("1", "2", "A"), ("1", "2", "B")]
    # The eval blend of A and B: x [.55 .45] -> 0, y [.35 .65] -> 1 (with C, x would go to 1)
    assert read_submission(tmp_path / "sub.csv") == {"x": 0, "y": 1}


def test_select_on_the_mask_contest_lets_multi_models_join_every_task(tmp_path, capsys):
    exp = experiment(tmp_path, seed=3, skills={"multi": 4.0})
    code, stdout, _ = run_cli(["--from", exp, "--select", "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0
    reports = re.findall(r"^(mask|gender|age): ensemble macro_f1 ([\d.]+) vs best single ([\d.]+)", stdout, re.M)
    assert [task for task, _, _ in reports] == ["mask", "gender", "age"]
    assert all(float(ensemble) >= float(single) for _, ensemble, single in reports)
    assert stdout.count("(multi, marginals)") == 3  # the strong multi run is in every task's ensemble
    assert len(read_submission(tmp_path / "sub.csv")) == len(EVAL_IDS)


def test_select_works_on_explicit_paths_with_valid_pairs(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, stdout, _ = run_cli(["--multi", f"{exp}/multi_*/submission*_soft.csv", "--mask", f"{exp}/mask_*/sub*.csv",
                               "--select", "--rounds", "3", "-o", tmp_path / "sub.csv"], capsys)
    assert code == 0 and "selection on validation (macro_f1, 3 rounds, arithmetic mean)" in stdout


def corrupt_valid(exp: Path, run_glob: str, change) -> None:
    path = next(exp.glob(f"{run_glob}/valid*_soft.csv"))
    frame = pd.read_csv(path, dtype={"ImageID": str})
    change(frame)
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("run_glob, change, needles", [
    ("age_*_t4", lambda f: f.__setitem__("label", (f["label"] + 1) % 3),
     ["age_resnet18_16_focal_0.0001_t4/valid3", "age label", "disagrees with", "multi_ecaresnet50t"]),
    ("mask_*_t2", lambda f: f.__setitem__("ImageID", f["ImageID"].str.replace("000000_", "999999_")),
     ["mask_ecaresnet50t_16_focal_0.0001_t2/submission3", "validated on different images", "blend without --select"]),
])
def test_select_refuses_members_validated_on_other_images_or_labels(tmp_path, capsys, run_glob, change, needles):
    exp = experiment(tmp_path)
    corrupt_valid(exp, run_glob, change)
    code, _, err = run_cli(["--from", exp, "--select", "-o", tmp_path / "out" / "sub.csv"], capsys)
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "out").exists()


def params_folder(root: Path, text: str) -> Path:
    (root / "exp").mkdir(parents=True)
    (root / "exp" / "params.json").write_text(text)
    return root / "exp"


@pytest.mark.parametrize("setup, needles", [
    (lambda root: root / "nowhere", ["nowhere: folder not found (given to --from)"]),
    (lambda root: root.mkdir() or root, ["in: no run folders under it"]),
    (lambda root: make_run(root / "exp", "mask", "m", "t", {}).parent, ["exp: no eval soft CSVs"]),
    (lambda root: params_folder(root, "{oops"), ["exp/params.json: unreadable params.json"]),
    (lambda root: params_folder(root, '["mask"]'), ["exp/params.json: expected one JSON object"]),
    (lambda root: params_folder(root, json.dumps({"classification": "shoes"})),
     ["exp/params.json: 'classification' is 'shoes', expected one of mask, gender, age, multi"]),
])
def test_bad_run_folders(tmp_path, capsys, setup, needles):
    root = setup(tmp_path / "in")
    code, _, err = run_cli(["--from", root, "-o", tmp_path / "out" / "sub.csv"], capsys)
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "out").exists()
