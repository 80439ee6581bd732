import shutil

import numpy as np
import pandas as pd
import pytest

from harness.data.labels import MASK_STEMS
from harness.data.layouts import load_eval, load_train
from harness.data.opencv import cv2
from harness.errors import UserError


def copy_of(demo_dir, tmp_path):
    return shutil.copytree(demo_dir, tmp_path / "data")


def test_contest_layout_reads_every_photo_and_skips_dot_files(demo_dir):
    data = load_train(demo_dir)
    assert data.layout == "mask contest"
    assert len(data.paths) == 24 * 7
    assert not any(part.startswith(".") for path in data.paths for part in path.split("/"))
    assert {p.rsplit(".", 1)[1] for p in data.paths} >= {"jpg", "png"}  # mixed extensions are read
    assert len(set(data.groups)) == 24


def test_labels_come_from_the_file_and_folder_names(demo_dir):
    data = load_train(demo_dir)
    table = pd.read_csv(demo_dir / "train" / "train.csv", dtype=str)
    by_profile = table.set_index("path")
    for index, path in enumerate(data.paths):
        profile, name = path.split("/")
        row = by_profile.loc[profile]
        age = int(row["age"])
        assert data.labels["mask"][index] == MASK_STEMS[name.rsplit(".", 1)[0]]
        assert data.labels["gender"][index] == (row["gender"] == "female")
        assert data.labels["age"][index] == (0 if age < 30 else 1 if age < 60 else 2)
        assert data.labels["multi"][index] == (data.labels["mask"][index] * 6 + data.labels["gender"][index] * 3
                                               + data.labels["age"][index])
    ages = dict(zip(data.paths, data.labels["age"]))
    assert ages[[p for p in data.paths if p.split("/")[0].endswith("_59")][0]] == 1
    assert ages[[p for p in data.paths if p.split("/")[0].endswith("_60")][0]] == 2


def test_eval_set_follows_info_csv_order(demo_dir):
    evaluation = load_eval(demo_dir)
    assert evaluation.image_ids == pd.read_csv(demo_dir / "eval" / "info.csv")["ImageID"].tolist()


def test_class_folder_tree(tmp_path):
    for label, count in (("cat", 3), ("dog", 2), ("eel", 4)):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(tmp_path / "train" / label / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
        (tmp_path / "train" / label / "._0.png").write_bytes(b"junk")
    (tmp_path / "train" / ".DS_Store").write_bytes(b"junk")
    data = load_train(tmp_path)
    assert data.class_names["multi"] == ["cat", "dog", "eel"]
    assert data.labels["multi"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert data.paths[0] == "cat/0.png"
    with pytest.raises(UserError, match="classification 'mask' needs the mask contest's layout"):
        data.task_labels("mask")
    assert load_eval(tmp_path) is None


@pytest.mark.parametrize("labels, names, encoded", [
    (["b", "a", "c", "a"], ["a", "b", "c"], [1, 0, 2, 0]),
    ([2, 0, 1, 3], ["0", "1", "2", "3"], [2, 0, 1, 3]),  # integer labels are the classes themselves
    (["1", "01", "1.0", "0"], ["0", "1"], [1, 1, 1, 0]),  # one class however the number is written
])
def test_path_label_csv(tmp_path, labels, names, encoded):
    (tmp_path / "train" / "images").mkdir(parents=True)
    paths = [f"img{i}.jpg" for i in range(len(labels))]
    for path in paths:
        cv2.imwrite(str(tmp_path / "train" / "images" / path), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame({"path": paths, "label": labels}).to_csv(tmp_path / "train" / "train.csv", index=False)
    data = load_train(tmp_path)
    assert data.class_names["multi"] == names
    assert data.labels["multi"].tolist() == encoded
    assert data.root == tmp_path / "train" / "images"


def test_an_integer_label_far_beyond_the_images_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "train" / name), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame({"path": ["a.png", "b.png"], "label": [0, 300000]}).to_csv(tmp_path / "train" / "train.csv",
                                                                         index=False)
    with pytest.raises(UserError, match="row 3: label '300000' would make 300001 classes for 2 images"):
        load_train(tmp_path)


def test_an_empty_class_folder_is_refused(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / "train" / label).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "cat" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="train/dog holds no images: every class folder needs at least one"):
        load_train(tmp_path)


def break_csv(data, column, value):
    table = pd.read_csv(data / "train" / "train.csv", dtype=str)
    table.loc[2, column] = value
    table.to_csv(data / "train" / "train.csv", index=False)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "train" / "train.csv").unlink(), "class folder"),
    (lambda d: shutil.rmtree(d / "train"), "train not found"),
    (lambda d: break_csv(d, "gender", "unknown"), "gender 'unknown' is not male or female"),
    (lambda d: break_csv(d, "age", "old"), "row 4: age 'old' is not a number"),
    (lambda d: break_csv(d, "path", "999999_male_Asian_20"), "999999_male_Asian_20 not found"),
    (lambda d: (d / "train" / "train.csv").write_text("id,who\n1,x\n"), "expected id,gender,race,age,path"),
    (lambda d: (d / "train" / "train.csv").write_bytes(b""), "is not a readable CSV"),
    (lambda d: (d / "train" / "train.csv").write_bytes(b"\xff\xfe\x00bad"), "is not a readable CSV"),
    (lambda d: next((d / "train" / "images").glob("000002*")).joinpath("selfie.jpg").write_bytes(b"x"),
     "'selfie' is not a mask state"),
])
def test_broken_data_sets_fail_with_one_clear_line(demo_dir, tmp_path, damage, message):
    data = copy_of(demo_dir, tmp_path)
    damage(data)
    with pytest.raises(UserError) as caught:
        load_train(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_eval_image_missing_is_named(demo_dir, tmp_path):
    data = copy_of(demo_dir, tmp_path)
    first = pd.read_csv(data / "eval" / "info.csv")["ImageID"][0]
    (data / "eval" / "images" / first).unlink()
    with pytest.raises(UserError, match=f"{first} not found \\(1 of the 40 images"):
        load_eval(data)


def test_old_age_relabels_age_and_multi_from_the_ages(demo_dir):
    data = load_train(demo_dir)
    ages = data.ages
    assert ages is not None and len(ages) == len(data.paths)
    assert (data.task_labels("age", 60) == data.labels["age"]).all()
    moved = data.task_labels("age", 59)
    assert (moved[ages == 59] == 2).all() and (data.labels["age"][ages == 59] == 1).all()
    assert (moved[ages != 59] == data.labels["age"][ages != 59]).all()
    multi = data.task_labels("multi", 59)
    assert (multi == data.labels["mask"] * 6 + data.labels["gender"] * 3 + moved).all()
    for task in ("mask", "gender"):  # no age in them: unchanged
        assert (data.task_labels(task, 58) == data.labels[task]).all()


def test_old_age_needs_a_layout_with_ages(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "train" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / name / "a.png"), np.zeros((8, 8, 3), np.uint8))
    data = load_train(tmp_path)
    assert (data.task_labels("multi", 60) == data.labels["multi"]).all()
    with pytest.raises(UserError, match="old_age 58 needs ages to re-label, and .* is a class-folder data set "
                                        "without them .*: keep old_age 60"):
        data.task_labels("multi", 58)
