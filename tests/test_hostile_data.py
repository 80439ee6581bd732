"""Odd or hostile data and run folders (issue 25): each ends in one line naming the file, the row or the flag, or is
handled and said; none in a traceback, none silently."""
import json
import shutil
import struct
import time
import zlib

import numpy as np
import pandas as pd
import pytest

from harness.data.layouts import load_eval, load_train
from harness.data.opencv import cv2
from harness.data.split import split_indices
from harness.data.transforms import decode
from harness.errors import UserError
from hostile_helpers import FAST, data_copy, one_line, run_predict, run_trial, small_disk, trained_run


def set_cell(csv, row, column, value):
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(csv, index=False)


def png(path, width, height, rows=None):
    """A PNG whose header says width x height; its pixel data is `rows` zero rows (all of them by default),
    compressed: a decompression bomb is a few hundred kB on disk."""
    compressor, chunks = zlib.compressobj(9), []
    row = b"\0" * (1 + 3 * width)
    for _ in range(height if rows is None else rows):
        chunks.append(compressor.compress(row))
    data = b"".join(chunks) + compressor.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height, rows", [(9000, 9000, None), (40000, 40000, 1)],
                         ids=["bomb-81Mpx", "header-1.6Gpx"])
def test_an_image_of_too_many_pixels_is_refused_by_its_header(tmp_path, width, height, rows):
    """A 9000x9000 PNG of 0.3 MB would decode to 243 MB (a 20000x20000 one to 1.2 GB): refused before decoding."""
    bomb = png(tmp_path / "bomb.png", width, height, rows)
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        decode(bomb)
    assert time.perf_counter() - started < 1.0, "it was decoded"
    assert str(caught.value) == (f"{bomb} is {width}x{height} pixels: more than the 64 Mpx an image may have (a "
                                 "decompression bomb, or a photo to shrink before training)")


def test_a_trial_with_a_bomb_among_its_images_ends_in_one_line(demo_dir, tmp_path):
    data = data_copy(demo_dir, tmp_path)
    profile = next(p for p in sorted((data / "train" / "images").iterdir()) if p.is_dir())
    for existing in profile.glob("normal.*"):
        existing.unlink()
    bomb = png(profile / "normal.png", 9000, 9000)
    done = run_trial("--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--cache_dir",
                     str(tmp_path / "cache"), *FAST, "--num_workers", "1")
    assert one_line(done).endswith(f"{bomb} is 9000x9000 pixels: more than the 64 Mpx an image may have (a "
                                   "decompression bomb, or a photo to shrink before training)")


@pytest.mark.parametrize("age", ["-5", "inf", "1e9", "nan"])
def test_an_impossible_age_is_one_line_naming_the_row(demo_dir, tmp_path, age):
    data = data_copy(demo_dir, tmp_path)
    set_cell(data / "train" / "train.csv", 4, "age", age)
    with pytest.raises(UserError, match=rf"train.csv row 6: age '{age}' is not a number of years in 0..150$"):
        load_train(data)


def labels_data(tmp_path, rows):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    for path, _ in rows:
        cv2.imwrite(str(data / "train" / path), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(data / "train" / "train.csv", index=False)
    return data


def test_an_image_listed_twice_with_two_labels_is_one_line(tmp_path):
    data = labels_data(tmp_path, [("a.png", "cat"), ("b.png", "dog"), ("c.png", "dog"), ("a.png", "dog")])
    with pytest.raises(UserError, match=r"train.csv rows 2 and 5 both list 'a.png': expected each image once$"):
        load_train(data)


def test_an_empty_label_is_one_line_not_a_class(tmp_path):
    data = labels_data(tmp_path, [("a.png", "cat"), ("b.png", "dog"), ("c.png", " ")])
    with pytest.raises(UserError, match=r"train.csv row 4: the label is empty: expected a class name or number$"):
        load_train(data)


def test_one_person_id_on_two_rows_is_one_person_in_the_split(demo_dir, tmp_path, caplog):
    data = data_copy(demo_dir, tmp_path)
    table = pd.read_csv(data / "train" / "train.csv", dtype=str)
    table.loc[5, "id"] = table.loc[4, "id"]
    table.to_csv(data / "train" / "train.csv", index=False)
    train_set = load_train(data)
    assert f"lists person id {table.loc[4, 'id']!r} on 2 rows" in caplog.text
    assert len(set(train_set.groups)) == 23
    rows = [i for i, path in enumerate(train_set.paths) if path.split("/")[0] in set(table.loc[4:5, "path"])]
    for seed in range(8):  # whichever side the person falls on, all 14 photos fall there together
        train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, 0.3, seed)
        assert set(rows) <= set(train_idx) or set(rows) <= set(val_idx)


def test_a_header_only_eval_info_csv_is_one_line(demo_dir, tmp_path):
    data = data_copy(demo_dir, tmp_path)
    (data / "eval" / "info.csv").write_text("ImageID,ans\n")
    with pytest.raises(UserError, match="info.csv lists no images: expected one ImageID per image to predict"):
        load_eval(data)


def test_a_split_that_leaves_no_training_image_is_one_line(demo_dir, tmp_path):
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path / "out"), *FAST, "--val_ratio", "0.99")
    assert one_line(done).endswith("--val_ratio 0.99 (split by person) leaves 0 of the data set's 168 images to train "
                                   "on: expected at least 2")
    assert not list((tmp_path / "out").rglob("params.json")), "a run folder was left"


def test_a_one_image_training_set_is_one_line(tmp_path):
    data = labels_data(tmp_path, [("a.png", "cat"), ("b.png", "dog"), ("c.png", "dog")])
    done = run_trial("--data_dir", str(data), "--output_dir", str(tmp_path / "out"), *FAST, "--val_ratio", "0.5")
    assert one_line(done).endswith("--val_ratio 0.5 (split by image) leaves 1 of the data set's 3 images to train "
                                   "on: expected at least 2")


def class_folders(tmp_path, demo_dir, classes):
    images = sorted((demo_dir / "eval" / "images").glob("*.jpg"))
    for number, name in enumerate(classes):
        (tmp_path / "data" / "train" / name).mkdir(parents=True, exist_ok=True)
        for image in images[number * 6:(number + 1) * 6]:
            shutil.copy(image, tmp_path / "data" / "train" / name / image.name)
    return tmp_path / "data"


def test_a_class_folder_added_before_resume_is_one_line(demo_dir, tmp_path):
    """The validation split and the classes depend on the data: a resume on other data is refused."""
    data = class_folders(tmp_path, demo_dir, ["ant", "bee"])
    run = trained_run(data, tmp_path / "out", "--epochs", "1")
    fingerprint = json.loads((run / "params.json").read_text())["data_fingerprint"]
    class_folders(tmp_path, demo_dir, ["ant", "bee", "cat"])
    line = one_line(run_trial("--resume", str(run)))
    now = line.split(" in params.json, ")[1].split()[0]
    assert now != fingerprint
    assert line.endswith(f"{run}: its data set changed since the run started (data_fingerprint {fingerprint} in "
                         f"params.json, {now} now): its validation split would differ; continue it on the data it "
                         "started with, or start a new run")


@pytest.fixture(scope="module")
def best_run(demo_dir, tmp_path_factory):
    return trained_run(demo_dir, tmp_path_factory.mktemp("best"), "--checkpoint", "best")


@pytest.mark.parametrize("damage", [b"{\"epoch\": 1, \"train_acc\": 0.5,\n", b"\xff\xfe\x00garbage\n",
                                    b"{\"epoch\": \"one\"}\n"], ids=["torn", "binary", "typed"])
def test_predict_on_a_damaged_metrics_file_is_one_line(best_run, tmp_path, damage):
    run = shutil.copytree(best_run, tmp_path / "standalone" / best_run.name)
    (run / "metrics.jsonl").write_bytes(damage)
    line = one_line(run_predict(str(run)))
    assert f"{run / 'metrics.jsonl'}" in line and ("line 1: expected one JSON object" in line or "unreadable" in line)


@pytest.mark.parametrize("params", ["[1, 2]", '{"classification": "multi", "epochs": "abc"}', "not json"],
                         ids=["a-list", "epochs-abc", "not-json"])
@pytest.mark.parametrize("program", ["resume", "predict"])
def test_a_damaged_params_json_is_one_line(tmp_path, params, program):
    run = tmp_path / "run"
    run.mkdir()
    (run / "params.json").write_text(params)
    (run / "last.pt").write_bytes(b"")
    done = run_trial("--resume", str(run)) if program == "resume" else run_predict(str(run))
    line = one_line(done)
    assert f"{run / 'params.json'}: " in line
    assert any(text in line for text in ("expected one JSON object, found list", "'epochs' is 'abc', expected a "
                                         "positive integer", "unreadable params.json"))


def test_a_read_only_cache_folder_is_said_and_the_trial_decodes_from_disk(demo_dir, tmp_path):
    with small_disk(tmp_path / "cache", "1m", "ro") as cache:
        done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path / "out"), "--cache_dir",
                         str(cache), *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"the image cache folder {cache} cannot be written (Read-only file system): decoding from disk every " \
           "epoch" in done.stdout + done.stderr
