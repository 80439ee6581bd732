"""Outputs that tell the truth and delete nothing of the user's (issue 25): the demo generator replaces only its
own files and refuses a file or a link as --out; the ensemble on a full disk writes all of its files or none."""
import subprocess
import sys

import numpy as np
import pytest

from ensemble_helpers import write_soft
from harness.data.demo import MARKER, generate
from harness.errors import UserError
from harness.outputs.soft_csv import softmax
from hostile_helpers import ROOT, small_disk

SMALL = {"people": 6, "eval_images": 2, "width": 32, "height": 32}


def demo_data(*args):
    return subprocess.run([sys.executable, "-m", "harness.demo_data", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_rewriting_a_demo_folder_keeps_what_the_user_added(tmp_path):
    demo = generate(tmp_path / "demo", **SMALL)
    notes = demo / "notes.txt"
    notes.write_text("mine")
    (demo / "train" / "images" / "000001_male_Asian_18" / "extra.txt").write_text("mine too")
    generate(demo, **{**SMALL, "people": 8, "seed": 1})
    assert notes.read_text() == "mine"
    assert (demo / "train" / "images" / "000001_male_Asian_18" / "extra.txt").read_text() == "mine too"
    assert len((demo / "train" / "train.csv").read_text().splitlines()) == 9  # the new set is in place


def test_a_file_the_user_changed_in_the_way_refuses_and_changes_nothing(tmp_path):
    demo = generate(tmp_path / "demo", **SMALL)
    (demo / "train" / "train.csv").write_text("id,gender,race,age,path\n1,male,x,20,p\n")  # edited since
    before = {p: p.read_bytes() for p in demo.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match=f"{demo / 'train' / 'train.csv'} is in the way: python -m harness.demo_data "
                                        "did not write it \\(or it was changed since\\), so it is not replaced; "
                                        "nothing was changed"):
        generate(demo, **SMALL)
    assert {p: p.read_bytes() for p in demo.rglob("*") if p.is_file()} == before


def test_a_folder_from_an_older_version_is_refused(tmp_path):
    old = tmp_path / "old"
    (old / "train").mkdir(parents=True)
    (old / MARKER).write_text("written by python -m harness.demo_data; rewriting this folder replaces it whole\n")
    (old / "train" / "mine.txt").write_text("mine")
    with pytest.raises(UserError, match="does not list the files python -m harness.demo_data wrote"):
        generate(old, **SMALL)
    assert (old / "train" / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("kind", ["file", "link"])
def test_out_at_a_file_or_a_link_is_one_line(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("mine")
    else:
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    done = demo_data("--out", str(out), "--people", "6", "--eval", "1", "--size", "32x32")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    expected = "is a file: expected a new or empty folder" if kind == "file" else \
        "is a symbolic link: give a folder of its own (the files would be written where it leads)"
    assert done.stderr.strip() == f"python -m harness.demo_data: error: --out {out} {expected}; nothing was changed"
    assert (out.read_text() == "mine") if kind == "file" else not list((tmp_path / "elsewhere").iterdir())


def test_the_ensemble_on_a_full_disk_writes_nothing_and_says_so(tmp_path):
    """The submission and three blended soft CSVs (about 240 kB) on a 200 kB disk: two of them used to be written
    before the third found the disk full, under a message saying that nothing was written."""
    rng = np.random.default_rng(0)
    ids = [f"img_{i:05d}.jpg" for i in range(2000)]
    inputs = {task: write_soft(tmp_path / "in" / f"{task}.csv", ids, softmax(rng.normal(size=(2000, classes))))
              for task, classes in (("mask", 3), ("gender", 2), ("age", 3))}
    with small_disk(tmp_path / "disk", "200k") as disk:
        done = subprocess.run([sys.executable, "-m", "ensemble", *[f"--{t}={p}" for t, p in inputs.items()], "-o",
                               str(disk / "submission.csv")], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].endswith("free); nothing was written")
        assert list(disk.iterdir()) == [], "a file was written"


def test_the_ensemble_s_outputs_appear_together(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"img_{i}.jpg" for i in range(10)]
    mask = write_soft(tmp_path / "mask.csv", ids, softmax(rng.normal(size=(10, 3))))
    gender = write_soft(tmp_path / "gender.csv", ids, softmax(rng.normal(size=(10, 2))))
    age = write_soft(tmp_path / "age.csv", ids, softmax(rng.normal(size=(10, 3))))
    done = subprocess.run([sys.executable, "-m", "ensemble", f"--mask={mask}", f"--gender={gender}", f"--age={age}",
                           "-o", str(tmp_path / "out" / "sub.csv")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "sub.csv", "sub_age_soft.csv", "sub_gender_soft.csv", "sub_mask_soft.csv"]


def test_a_demo_set_without_eval_images_is_a_train_only_set(tmp_path):
    """--eval 0 wrote an empty eval/info.csv, which trials refuse: now no eval/ at all, read as no images to predict."""
    from harness.data.layouts import load_eval
    demo = generate(tmp_path / "demo", **{**SMALL, "eval_images": 0})
    assert not (demo / "eval").exists() and (demo / "train" / "train.csv").is_file()
    assert load_eval(demo) is None
