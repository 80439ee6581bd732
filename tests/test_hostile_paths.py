"""Every image path stays inside the data folder (issue 25): paths from train.csv, a path,label CSV and
eval/info.csv that climb out or are absolute, and symbolic links that lead out, end in one line naming the CSV row
(links are read with --allow_outside_links true); what is not a regular file is refused without being opened."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.data.layouts import load_eval, load_train
from harness.data.opencv import cv2
from harness.errors import UserError
from hostile_helpers import FAST, ROOT, data_copy, one_line, run_trial


@pytest.fixture
def outside(tmp_path):
    """A secret beside the data folder, and a whole person's folder of photos there."""
    folder = tmp_path / "outside"
    (folder / "person").mkdir(parents=True)
    for stem in ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"):
        cv2.imwrite(str(folder / "person" / f"{stem}.jpg"), np.full((16, 16, 3), 9, np.uint8))
    cv2.imwrite(str(folder / "secret.jpg"), np.full((16, 16, 3), 7, np.uint8))
    return folder


def set_cell(csv, row, column, value):
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(csv, index=False)


def labels_csv(data, paths, labels):
    for path in paths:
        if not os.path.isabs(path) and ".." not in path:
            cv2.imwrite(str(data / "train" / path), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame({"path": paths, "label": labels}).to_csv(data / "train" / "train.csv", index=False)


@pytest.mark.parametrize("escape", ["../../../../outside/person", "../../outside/person", "/etc"])
def test_a_train_csv_profile_outside_the_data_is_refused(demo_dir, tmp_path, outside, escape):
    data = data_copy(demo_dir, tmp_path)
    set_cell(data / "train" / "train.csv", 3, "path", escape)
    with pytest.raises(UserError) as caught:
        load_train(data)
    assert str(caught.value) == (f"{data / 'train' / 'train.csv'} row 5: path {escape!r} leads outside "
                                 f"{data / 'train' / 'images'}: expected a path under {data / 'train' / 'images'}")


@pytest.mark.parametrize("escape", ["../../outside/secret.jpg", "/etc/passwd", ""])
def test_an_eval_image_id_outside_the_data_is_refused(demo_dir, tmp_path, outside, escape):
    data = data_copy(demo_dir, tmp_path)
    set_cell(data / "eval" / "info.csv", 1, "ImageID", escape)
    with pytest.raises(UserError, match=rf"info.csv row 3: path {escape!r} (leads outside|is empty)"):
        load_eval(data)


@pytest.mark.parametrize("escape", ["../../outside/secret.jpg", "/etc/passwd"])
def test_a_labels_csv_path_outside_the_data_is_refused(tmp_path, outside, escape):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    labels_csv(data, ["a.png", "b.png", escape], ["cat", "dog", "dog"])
    with pytest.raises(UserError, match=rf"train.csv row 4: path {escape!r} leads outside"):
        load_train(data)


def test_a_trial_on_an_escaping_path_ends_in_one_line_and_reads_nothing(demo_dir, tmp_path, outside):
    data = data_copy(demo_dir, tmp_path)
    set_cell(data / "eval" / "info.csv", 0, "ImageID", "../../outside/secret.jpg")
    done = run_trial("--data_dir", str(data), "--output_dir", str(tmp_path / "out"), *FAST)
    assert one_line(done).endswith("info.csv row 2: path '../../outside/secret.jpg' leads outside "
                                   f"{data / 'eval' / 'images'}: expected a path under {data / 'eval' / 'images'}")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.csv"))


@pytest.mark.parametrize("where", ["profile image", "profile folder", "eval image"])
def test_a_link_leading_outside_is_refused_unless_allowed(demo_dir, tmp_path, outside, where):
    data = data_copy(demo_dir, tmp_path)
    profile = next(p for p in sorted((data / "train" / "images").iterdir()) if p.is_dir())
    if where == "profile image":
        target = next(profile.glob("mask1.*"))
        target.unlink()
        target.symlink_to(outside / "secret.jpg")
    elif where == "profile folder":
        (data / "train" / "images" / "linked").symlink_to(outside / "person", target_is_directory=True)
        set_cell(data / "train" / "train.csv", 0, "path", "linked")
        target = data / "train" / "images" / "linked"
    else:
        target = data / "eval" / "images" / pd.read_csv(data / "eval" / "info.csv")["ImageID"][0]
        target.unlink()
        target.symlink_to(outside / "secret.jpg")
    load = load_eval if where == "eval image" else load_train
    with pytest.raises(UserError) as caught:
        load(data)
    assert f"{target} leads to {os.path.realpath(target)}, outside the data folder {data}" in str(caught.value)
    assert str(caught.value).endswith("pass --allow_outside_links true to read images linked from elsewhere")
    assert load(data, allow_outside_links=True) is not None


def test_a_link_inside_the_data_folder_is_read(demo_dir, tmp_path):
    data = data_copy(demo_dir, tmp_path)
    ids = pd.read_csv(data / "eval" / "info.csv")["ImageID"]
    first, second = (data / "eval" / "images" / ids[0]), (data / "eval" / "images" / ids[1])
    first.unlink()
    first.symlink_to(second)
    assert load_eval(data).image_ids == ids.tolist()


SCAN = "import sys; from harness.data.layouts import load_train, load_eval; load_train(sys.argv[1]); " \
       "load_eval(sys.argv[1])"


def odd_place(data, where):
    """Where the test puts something named like an image: in a profile folder (instead of its mask1), in a class
    folder, listed by eval/info.csv (instead of its first image), or in eval/images without an info.csv."""
    if where == "class folder":
        (data / "train").rename(data / "mask-train")
        for name in ("cat", "dog"):
            (data / "train" / name).mkdir(parents=True)
            cv2.imwrite(str(data / "train" / name / "0.png"), np.zeros((8, 8, 3), np.uint8))
        return data / "train" / "cat" / "1.jpg"
    if where == "profile":
        profile = next(p for p in sorted((data / "train" / "images").iterdir()) if p.is_dir())
        for existing in profile.glob("mask1.*"):
            existing.unlink()
        return profile / "mask1.jpg"
    if where == "eval listed":
        odd = data / "eval" / "images" / pd.read_csv(data / "eval" / "info.csv")["ImageID"][0]
        odd.unlink()
        return odd
    (data / "eval" / "info.csv").unlink()  # the eval set is then every image of eval/images
    return data / "eval" / "images" / "odd.jpg"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("where", ["profile", "class folder", "eval listed", "eval scanned"])
def test_a_fifo_or_a_folder_named_like_an_image_is_one_line_and_never_blocks(demo_dir, tmp_path, kind, where):
    """A FIFO named like an image blocked the data scan forever (an open() waits for a writer); a folder named like
    one crashed it. The scan runs in a process of its own here, so that a block fails the test instead of hanging
    it. Where folders are scanned (class folders, eval/images), a folder named like an image is a folder."""
    data = data_copy(demo_dir, tmp_path)
    odd = odd_place(data, where)
    os.mkfifo(odd) if kind == "fifo" else odd.mkdir()
    done = subprocess.run([sys.executable, "-c", SCAN, str(data)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    if kind == "folder" and where in ("class folder", "eval scanned"):
        assert done.returncode == 0, done.stderr[-2000:]
        return
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("harness.errors.UserError: ")
    assert done.stderr.strip().endswith(f"{odd} is {'a FIFO (named pipe)' if kind == 'fifo' else 'a folder'}, "
                                        "not an image file")
