"""python -m ensemble on explicit CSVs: the answers are hand-computed from the tables below."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble_helpers import read_submission, run_cli, write_soft

REPO = Path(__file__).resolve().parents[1]
IDS = ["img_a", "img_b", "img_c"]
MASK_A = [[.7, .2, .1], [.1, .3, .6], [.4, .4, .2]]
MASK_B = [[.1, .8, .1], [.2, .2, .6], [.1, .2, .7]]  # mean with A: [.4 .5 .1] -> 1, [.15 .25 .6] -> 2,
#                                                      [.25 .3 .45] -> 2
GENDER = [[.3, .7], [.9, .1], [.6, .4]]              # -> 1, 0, 0
AGE = [[.2, .5, .3], [.1, .1, .8], [.5, .3, .2]]     # -> 1, 2, 0
# 18-class: img_a .6 on class 2 (mask 0, gender 0, age 2) and .4 on 17 (2, 1, 2); img_b all on 9 (1, 1, 0);
# img_c all on 0. Marginals: img_a mask [.6 0 .4], gender [.6 .4], age [0 0 1].
MULTI = np.zeros((3, 18))
MULTI[0, 2], MULTI[0, 17], MULTI[1, 9], MULTI[2, 0] = .6, .4, 1, 1


@pytest.fixture
def csvs(tmp_path: Path) -> dict[str, Path]:
    return {name: write_soft(tmp_path / "in" / f"{name}.csv", IDS, probs) for name, probs in
            {"mask_a": MASK_A, "mask_b": MASK_B, "gender": GENDER, "age": AGE, "multi": MULTI}.items()}


def ensemble(capsys, *argv) -> tuple[int, str, str]:
    return run_cli(argv, capsys)


def test_per_task_blend_writes_the_submission_and_each_tasks_soft_csv(csvs, tmp_path, capsys):
    out = tmp_path / "out" / "sub.csv"
    code, stdout, _ = ensemble(capsys, "--mask", csvs["mask_a"], csvs["mask_b"], "--gender", csvs["gender"],
                               "--age", csvs["age"], "-o", out)
    assert code == 0
    # img_a: mask 1, gender 1, age 1 -> 6 + 3 + 1; img_b: 2, 0, 2 -> 14; img_c: 2, 0, 0 -> 12
    assert read_submission(out) == {"img_a": 10, "img_b": 14, "img_c": 12}
    assert sorted(p.name for p in out.parent.iterdir()) == ["sub.csv", "sub_age_soft.csv", "sub_gender_soft.csv",
                                                            "sub_mask_soft.csv"]
    mask = pd.read_csv(out.parent / "sub_mask_soft.csv")
    assert list(mask.columns) == ["ImageID", "0", "1", "2", "ans"]
    np.testing.assert_allclose(mask[["0", "1", "2"]], [[.4, .5, .1], [.15, .25, .6], [.25, .3, .45]], atol=1e-6)
    assert mask["ans"].tolist() == [1, 2, 2]
    assert "wrote" in stdout


def test_a_second_blend_to_the_same_output_says_what_it_replaced(csvs, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    code, stdout, _ = ensemble(capsys, "--multi", csvs["multi"], "-o", out)
    assert code == 0 and "replaced" not in stdout
    code, stdout, _ = ensemble(capsys, "--multi", csvs["multi"], "-o", out)
    assert code == 0 and f"replaced the earlier {out}" in stdout


def test_weights_and_weighted_globs(csvs, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    # mask A x3, B x1: img_a [.55 .35 .1] -> 0; img_b [.125 .275 .6] -> 2; img_c [.325 .35 .325] -> 1
    code, _, _ = ensemble(capsys, "--mask", f"{csvs['mask_a']}:3", csvs["mask_b"], "--gender", csvs["gender"],
                          "--age", f"{csvs['age'].parent}/a*e.csv:0.5", "-o", out)
    assert code == 0
    assert read_submission(out) == {"img_a": 4, "img_b": 14, "img_c": 6}


def test_multi_csvs_join_each_tasks_vote_through_their_marginals(csvs, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    code, _, _ = ensemble(capsys, "--mask", csvs["mask_a"], csvs["mask_b"], "--gender", csvs["gender"],
                          "--age", csvs["age"], "--multi", csvs["multi"], "-o", out)
    assert code == 0
    # img_a: mask ([.7 .2 .1] + [.1 .8 .1] + [.6 0 .4]) / 3 -> 0, gender ([.3 .7] + [.6 .4]) / 2 -> 1,
    #        age ([.2 .5 .3] + [0 0 1]) / 2 -> 2: 0 + 3 + 2
    # img_b: mask ([.1 .3 .6] + [.2 .2 .6] + [0 1 0]) / 3 -> 1, gender -> 1, age ([.1 .1 .8] + [1 0 0]) / 2 -> 0
    # img_c: the multi CSV's class 0 pulls every task to 0
    assert read_submission(out) == {"img_a": 5, "img_b": 9, "img_c": 0}


def test_tasks_without_their_own_csvs_come_from_multi_alone(csvs, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    code, _, _ = ensemble(capsys, "--mask", csvs["mask_a"], csvs["mask_b"], "--multi", csvs["multi"], "-o", out)
    assert code == 0
    # img_a: mask 0 (as above), gender [.6 .4] -> 0, age -> 2
    assert read_submission(out) == {"img_a": 2, "img_b": 9, "img_c": 0}
    assert sorted(p.name for p in out.parent.glob("sub_*")) == ["sub_age_soft.csv", "sub_gender_soft.csv",
                                                                "sub_mask_soft.csv"]


def test_multi_alone_takes_the_argmax_of_the_joint_not_of_the_marginals(tmp_path, capsys):
    probs = np.zeros((1, 18))
    probs[0, [0, 7, 10, 16]] = [.3, .25, .25, .2]  # argmax 0; marginals: mask 1, gender 0, age 1 -> class 7
    out = tmp_path / "sub.csv"
    code, _, _ = ensemble(capsys, "--multi", write_soft(tmp_path / "m.csv", ["x"], probs), "-o", out)
    assert code == 0
    assert read_submission(out) == {"x": 0}
    assert [p.name for p in tmp_path.glob("sub_*")] == ["sub_multi_soft.csv"]


@pytest.mark.parametrize("mean, expected", [("arithmetic", {"a": 3, "b": 0}), ("geometric", {"a": 3, "b": 3})])
def test_plain_contest_with_k_classes(tmp_path, capsys, mean, expected):
    p = write_soft(tmp_path / "p.csv", ["a", "b"], [[.1, .2, .3, .4], [.7, .1, .1, .1]])
    q = write_soft(tmp_path / "q.csv", ["a", "b"], [[.5, .1, .1, .3], [.01, .1, .2, .69]])
    # p weighs 2. a: arithmetic [.7 .5 .7 1.1] / 3 -> 3; geometric p^2 q = [.005 .004 .009 .048] -> 3.
    # b: arithmetic [1.41 .3 .4 .89] / 3 -> 0; geometric [.0049 .001 .002 .0069] -> 3 (q's .01 drags class 0 down)
    out = tmp_path / "sub.csv"
    code, _, _ = ensemble(capsys, "--multi", f"{p}:2", q, "--mean", mean, "-o", out)
    assert code == 0
    assert read_submission(out) == expected
    soft = pd.read_csv(tmp_path / "sub_multi_soft.csv")
    assert list(soft.columns) == ["ImageID", "0", "1", "2", "3", "ans"]


def test_a_file_given_twice_counts_twice(tmp_path, capsys):
    p = write_soft(tmp_path / "p.csv", ["a"], [[.6, .4]])
    q = write_soft(tmp_path / "q.csv", ["a"], [[.1, .9]])
    assert ensemble(capsys, "--multi", p, q, p, "-o", tmp_path / "twice.csv")[0] == 0
    assert ensemble(capsys, "--multi", f"{p}:2", q, "-o", tmp_path / "weighted.csv")[0] == 0
    # (2 * .6 + .1) / 3 = .4333 -> class 1 either way, and the same blended numbers
    assert (tmp_path / "twice_multi_soft.csv").read_text() == (tmp_path / "weighted_multi_soft.csv").read_text()


def test_rows_are_matched_by_image_id_and_messy_csvs_are_fine(csvs, tmp_path, capsys):
    messy = write_soft(tmp_path / "messy.csv", IDS, MASK_B, columns=["ans", "2", "ImageID", "Unnamed: 0", "1", "0"],
                       extra={"ans": [5, 5, 5], "Unnamed: 0": [0, 1, 2]}, shuffle=1)
    clean_out, messy_out = tmp_path / "clean" / "sub.csv", tmp_path / "messy" / "sub.csv"
    common = ["--gender", csvs["gender"], "--age", csvs["age"]]
    assert ensemble(capsys, "--mask", csvs["mask_a"], csvs["mask_b"], *common, "-o", clean_out)[0] == 0
    assert ensemble(capsys, "--mask", csvs["mask_a"], messy, *common, "-o", messy_out)[0] == 0
    assert clean_out.read_text() == messy_out.read_text()


def test_output_follows_info_order_else_the_first_csv(csvs, tmp_path, capsys):
    info = tmp_path / "info.csv"
    pd.DataFrame({"ImageID": ["img_c", "img_a", "img_b"], "ans": [0, 0, 0]}).to_csv(info, index=False)
    first = write_soft(tmp_path / "first.csv", IDS, MASK_A, shuffle=5)
    common = ["--gender", csvs["gender"], "--age", csvs["age"]]
    assert ensemble(capsys, "--mask", csvs["mask_b"], *common, "--info", info, "-o", tmp_path / "a.csv")[0] == 0
    assert pd.read_csv(tmp_path / "a.csv")["ImageID"].tolist() == ["img_c", "img_a", "img_b"]
    assert ensemble(capsys, "--mask", first, csvs["mask_b"], *common, "-o", tmp_path / "b.csv")[0] == 0
    assert pd.read_csv(tmp_path / "b.csv")["ImageID"].tolist() == pd.read_csv(first)["ImageID"].tolist()


def test_softmax_flag_blends_logits(tmp_path, capsys):
    # logits [0, ln 3] -> [.25 .75]; [ln 3, 0] -> [.75 .25]; weights 1 and 2 -> [.583 .417] -> 0
    one = write_soft(tmp_path / "one.csv", ["x"], [[0.0, np.log(3)]])
    two = write_soft(tmp_path / "two.csv", ["x"], [[np.log(3), 0.0]])
    out = tmp_path / "sub.csv"
    assert ensemble(capsys, "--multi", one, f"{two}:2", "--softmax", "-o", out)[0] == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "sub_multi_soft.csv")[["0", "1"]], [[7 / 12, 5 / 12]],
                               atol=1e-6)


def test_help_explains_with_examples(capsys):
    code, stdout, _ = ensemble(capsys, "--help")
    assert code == 0
    for text in ("examples:", "--from", "--select", "--top_k", "PATH[:W]", "marginal", "--softmax"):
        assert text in stdout


def test_entry_point_runs_as_a_module(csvs, tmp_path):
    out = tmp_path / "sub.csv"
    ok = subprocess.run([sys.executable, "-m", "ensemble", "--mask", str(csvs["mask_a"]), str(csvs["mask_b"]),
                         "--gender", str(csvs["gender"]), "--age", str(csvs["age"]), "-o", str(out)],
                        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert read_submission(out) == {"img_a": 10, "img_b": 14, "img_c": 12}
    bad = subprocess.run([sys.executable, "-m", "ensemble", "--mask", str(tmp_path / "nope.csv"),
                          "-o", str(tmp_path / "bad.csv")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"python -m ensemble: error: {tmp_path / 'nope.csv'}: file not found "
                                               "(given to --mask)"]
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.csv").exists()
