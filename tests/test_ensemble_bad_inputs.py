"""Every bad input ends with exit status 2, one line naming the file and the problem, and no output file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble_helpers import assert_user_error, run_cli, write_soft

IDS = ["img_a", "img_b", "img_c"]
MASK = [[.7, .2, .1], [.1, .3, .6], [.4, .4, .2]]
GENDER = [[.3, .7], [.9, .1], [.6, .4]]
AGE = [[.2, .5, .3], [.1, .1, .8], [.5, .3, .2]]


def text(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def with_mask(mask, d: Path) -> list:
    """A complete mask-contest command whose mask input is `mask`."""
    return ["--mask", mask, "--gender", d / "gender.csv", "--age", d / "age.csv"]


def with_gender(gender, d: Path) -> list:
    return ["--mask", d / "mask.csv", "--gender", gender, "--age", d / "age.csv"]


def bad_soft(d: Path, ids=IDS, probs=MASK, **kwargs) -> Path:
    return write_soft(d / "bad.csv", ids, probs, **kwargs)


CASES = {
    "missing file": lambda d: (with_mask(d / "nope.csv", d), ["nope.csv: file not found (given to --mask)"]),
    "glob matching nothing": lambda d: (with_mask(f"{d}/zz*_soft.csv", d), ["zz*_soft.csv: no file matches"]),
    "a folder": lambda d: (with_mask(d, d), ["a folder, not a CSV", "--from"]),
    "different ImageID sets": lambda d: (
        with_gender(write_soft(d / "bad.csv", ["img_a", "img_b", "img_z"], GENDER), d),
        ["bad.csv: ImageIDs differ from", "mask.csv: 1 missing (e.g. 'img_c'), 1 extra (e.g. 'img_z')"]),
    "duplicate ImageIDs": lambda d: (with_mask(bad_soft(d, ids=["img_a", "img_b", "img_a"]), d),
                                     ["bad.csv: 1 duplicate ImageIDs (e.g. 'img_a' on line 4)"]),
    "empty ImageID": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\n,.2,.3,.5\n"), d),
                                ["bad.csv: empty ImageID on line 2"]),
    "NaN cell": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\nimg_a,.7,.2,.1\nimg_b,.1,NaN,.6\n"
                                                         "img_c,.4,.4,.2\n"), d),
                           ["bad.csv: empty, NaN or non-numeric cell 'NaN' in column '1' on line 3"]),
    "infinite cell": lambda d: (with_mask(bad_soft(d, probs=[[.7, .2, .1], [.1, np.inf, .6], [.4, .4, .2]]), d),
                                ["bad.csv: NaN or infinite cell in column '1' on line 3"]),
    "empty cell": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\nimg_a,.7,.2,.1\nimg_b,.1,,.6\n"
                                                           "img_c,.4,.4,.2\n"), d),
                             ["bad.csv: empty, NaN or non-numeric cell '' in column '1' on line 3"]),
    "3 columns given to --gender": lambda d: (with_gender(bad_soft(d), d),
                                              ["bad.csv: 3 class columns, but a gender CSV needs 2"]),
    "negative probability": lambda d: (with_mask(bad_soft(d, probs=[[.7, .2, .1], [1.2, -.2, 0], [.4, .4, .2]]), d),
                                       ["bad.csv: negative value on line 3", "--softmax"]),
    "logits": lambda d: (with_mask(bad_soft(d, probs=[[2.1, 0.3, 0.5]] * 3), d),
                         ["bad.csv: row on line 2 sums to 2.9, not 1", "pass --softmax if these are logits"]),
    "no ImageID column": lambda d: (with_mask(bad_soft(d, columns=["0", "1", "2"]), d),
                                    ["bad.csv: no 'ImageID' column"]),
    "non-numeric cell": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\nimg_a,.7,.2,.1\nimg_b,abc,.3,.6\n"
                                                                 "img_c,.4,.4,.2\n"), d),
                                   ["bad.csv: empty, NaN or non-numeric cell 'abc' in column '0' on line 3"]),
    "class columns with a gap": lambda d: (with_mask(bad_soft(d, probs=[[.7, .2, .1, 0]] * 3, columns=[
        "ImageID", "0", "1", "3"]), d), ["bad.csv: class columns must be '0'..'2', found 0, 1, 3"]),
    "a class column twice": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,1\nimg_a,.7,.2,.1\n"), d),
                                       ["bad.csv: class column '1' appears more than once"]),
    "no class columns": lambda d: (with_mask(text(d, "bad.csv", "ImageID,ans\nimg_a,3\n"), d),
                                   ["bad.csv: expected class columns '0'..'K-1'"]),
    "empty file": lambda d: (with_mask(text(d, "bad.csv", ""), d), ["bad.csv: empty file"]),
    "header only": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\n"), d), ["bad.csv: no rows"]),
    "unclosed quote": lambda d: (with_mask(text(d, "bad.csv", 'ImageID,0,1,2\n"img_a,.7,.2,.1\n'), d),
                                 ["bad.csv: unreadable CSV", "EOF inside string"]),
    "row longer than the header": lambda d: (with_mask(text(d, "bad.csv", "ImageID,0,1,2\nimg_a,.7,.2,.1,.5,.5\n"), d),
                                             ["bad.csv: unreadable CSV"]),
    "not text": lambda d: (with_mask(text(d, "bad.csv", b"\xff\xfe\x00\x01\x02"), d), ["bad.csv: unreadable CSV"]),
    "info with other ImageIDs": lambda d: (
        with_mask(d / "mask.csv", d) + ["--info", text(d, "info.csv", "ImageID,ans\nimg_a,0\nimg_b,0\nimg_q,0\n")],
        ["mask.csv: ImageIDs differ from", "info.csv: 1 missing (e.g. 'img_q'), 1 extra (e.g. 'img_c')"]),
    "info without ImageID": lambda d: (with_mask(d / "mask.csv", d) + ["--info", text(d, "info.csv", "id,ans\n1,0\n")],
                                       ["info.csv: no 'ImageID' column"]),
    "zero weight": lambda d: (with_mask(f"{d / 'mask.csv'}:0", d), ["mask.csv:0: weight '0' is not a positive number"]),
    "negative weight": lambda d: (with_mask(f"{d / 'mask.csv'}:-2", d), ["weight '-2' is not a positive number"]),
    "non-numeric weight": lambda d: (with_mask(f"{d / 'mask.csv'}:heavy", d), ["weight 'heavy' is not a positive"]),
    "a task with no CSVs": lambda d: (["--mask", d / "mask.csv", "--gender", d / "gender.csv"],
                                      ["no predictions for task 'age'", "--age or --multi"]),
    "multi CSVs of different class counts": lambda d: (
        ["--multi", write_soft(d / "k4.csv", IDS, [[.25] * 4] * 3), write_soft(d / "k5.csv", IDS, [[.2] * 5] * 3)],
        ["k5.csv: 5 class columns, but", "k4.csv has 4: all multi CSVs need the same classes"]),
    "a 4-class multi CSV with task CSVs": lambda d: (
        with_mask(d / "mask.csv", d) + ["--multi", write_soft(d / "k4.csv", IDS, [[.25] * 4] * 3)],
        ["k4.csv: 4 class columns, but multi CSVs combined with mask/gender/age ones need 18"]),
    "filters without --from": lambda d: (with_mask(d / "mask.csv", d) + ["--top_k", "2"], ["give --from"]),
    "weights with --select": lambda d: (with_mask(f"{d / 'mask.csv'}:2", d) + ["--select"],
                                        ["weights (PATH:W) cannot be combined with --select"]),
    "--select without a validation pair": lambda d: (with_mask(d / "mask.csv", d) + ["--select"],
                                                     ["mask.csv: cannot find its validation CSV"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_cleanly_and_writes_nothing(case, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    for name, probs in (("mask", MASK), ("gender", GENDER), ("age", AGE)):
        write_soft(d / f"{name}.csv", IDS, probs)
    argv, needles = CASES[case](d)
    out = tmp_path / "out"
    code, _, err = run_cli([*argv, "-o", out / "sub.csv"], capsys)
    assert_user_error(code, err, *needles)
    assert not out.exists()


def test_output_over_an_input_is_refused(tmp_path, capsys):
    mask = write_soft(tmp_path / "mask.csv", IDS, MASK)
    before = mask.read_text()
    argv = ["--mask", mask, "--gender", write_soft(tmp_path / "g.csv", IDS, GENDER),
            "--age", write_soft(tmp_path / "a.csv", IDS, AGE), "-o", mask]
    assert_user_error(*run_cli(argv, capsys)[::2], "mask.csv: is one of the inputs")
    assert mask.read_text() == before and not list(tmp_path.glob("mask_*"))


def test_argument_mistakes_exit_2_with_usage(tmp_path, capsys):
    code, _, err = run_cli(["--mask", "a.csv", "--tasks", "mask,shoes", "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and "--tasks: expected a comma-separated list of mask, gender, age, multi" in err
    code, _, err = run_cli(["--mask", "a.csv"], capsys)
    assert code == 2 and "-o/--output" in err
    assert not list(tmp_path.iterdir())


def test_bad_validation_label_names_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    write_soft(run / "submission1_0.9_0.1_soft.csv", IDS, [[.5, .5]] * 3)
    write_soft(run / "valid1_0.9_0.1_soft.csv", ["v1", "v2"], [[.5, .5]] * 2, labels=[0, 2])
    code, _, err = run_cli(["--multi", run / "submission1_0.9_0.1_soft.csv", "--select", "-o", tmp_path / "o.csv"],
                           capsys)
    assert_user_error(code, err, "valid1_0.9_0.1_soft.csv: label 2 on line 3 is not a class in 0..1")
    pd.testing.assert_index_equal(pd.Index(sorted(p.name for p in tmp_path.iterdir())), pd.Index(["run"]))
