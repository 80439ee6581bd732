"""python -m harness.real_photos on tiny fake sources in the real ones' file-name schemes: a face-mask repository
(dataset/<class>/<image>) and a UTKFace one (crop_part1/<age>_<gender>_<race>_<date>.jpg.chip.jpg), read from a
plain folder and from a bare git directory like the fetch tool's."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import real_photos as command
from harness.data import real_photos
from harness.data.layouts import load_eval, load_train
from harness.data.opencv import cv2
from harness.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 5000000\n"
# (age, gender, race) per UTKFace photo: every gender x age group, with ages on both sides of 30 and 60.
UTK_PEOPLE = [(age, gender, (age + gender) % 5) for gender in (0, 1)
              for age in (1, 9, 22, 29, 30, 41, 59, 60, 75, 90)]


def photo(seed: int, extension: str = ".jpg") -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(extension, image)
    assert ok
    return encoded.tobytes()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def commit_bare(work: Path, bare: Path) -> Path:
    """A bare git directory whose HEAD holds `work`'s files (its objects stay loose, so one can be removed)."""
    git = ["git", f"--git-dir={bare}", f"--work-tree={work}", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "photos"], check=True)
    return bare


@pytest.fixture(scope="module")
def mask_source(tmp_path_factory) -> dict:
    """10 with_mask and 6 without_mask photos, and one of each thing the tool must skip."""
    work = tmp_path_factory.mktemp("mask-work")
    top = work / "dataset"
    for i in range(10):
        write(top / "with_mask" / f"with_mask{i:03d}.jpg", photo(i))
    for i in range(6):
        write(top / "without_mask" / f"{i}.png", photo(100 + i, ".png"))
    write(top / "with_mask" / "0_0_\u2248\u02d9\u25ca\u00a2 2020-02-23 132115.JPG", photo(50))  # the real odd name
    write(top / "with_mask" / "with_mask000 copy.jpg", photo(0))  # a byte-identical copy
    write(top / "without_mask" / "same.jpg", photo(9))  # the bytes of with_mask009.jpg under another label
    write(top / "with_mask" / "._with_mask001.jpg", b"\x00\x05\x16\x07 AppleDouble")
    write(top / "with_mask" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(top / "with_mask" / "black3.jpg_1088Wx1632H", photo(51))
    write(top / "without_mask" / "broken.jpg", b"not a jpeg at all")
    write(top / "a_folder" / "broken.jpg", b"nor is this")  # a folder with no usable image is no class
    write(top / "without_mask" / "big.jpg", LFS)
    write(top / "loose.jpg", photo(52))
    write(top / "without_mask" / "gone.jpg", photo(53))
    bare = commit_bare(work, tmp_path_factory.mktemp("mask-git") / "repo")
    gone = hashlib.sha1(b"blob %d\0" % len(photo(53)) + photo(53)).hexdigest()
    (bare / "objects" / gone[:2] / gone[2:]).unlink()  # as a snapshot lacks files of 4 MiB and more
    return {"work": work, "bare": bare}


@pytest.fixture(scope="module")
def utk_source(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("utk-work")
    for index, (age, gender, race) in enumerate(UTK_PEOPLE * 2):
        write(work / "crop_part1" / f"{age}_{gender}_{race}_2017011021{index:04d}000.jpg.chip.jpg", photo(200 + index))
    write(work / "crop_part1" / "61_1_20170109142408075.jpg.chip.jpg", photo(300))  # a real malformed name
    return commit_bare(work, tmp_path_factory.mktemp("utk-git") / "repo")


def lay_out(source: Path, out: Path, *args: str) -> None:
    command.main(["--source", str(source), "--out", str(out), *args])


def files_under(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def photos_of(out: Path) -> dict[str, str]:
    """Every file but those that name the source (origin.json) and list the files (the manifest)."""
    return {name: digest for name, digest in files_under(out).items()
            if name not in (real_photos.MARKER, "origin.json")}


def test_face_mask_set_from_a_bare_git_directory(mask_source, tmp_path, capsys):
    out = tmp_path / "face-mask"
    lay_out(mask_source["bare"], out)
    printed = capsys.readouterr().out
    classes = pd.read_csv(out / "classes.csv")
    assert classes["class"].tolist() == ["with_mask", "without_mask"]
    assert classes["train"].tolist() == [8, 5] and classes["heldout"].tolist() == [2, 1]  # 10 and 6 photos
    assert len(list((out / "train" / "with_mask").iterdir())) == 8
    assert sorted(p.name for p in (out / "train").iterdir()) == ["with_mask", "without_mask"]
    reasons = dict(pd.read_csv(out / "skipped.csv").values)
    assert set(reasons) == {f"dataset/{name}" for name in (
        "with_mask/with_mask000.jpg", "with_mask/._with_mask001.jpg", "with_mask/.DS_Store",
        "with_mask/black3.jpg_1088Wx1632H", "without_mask/broken.jpg", "without_mask/big.jpg", "loose.jpg",
        "without_mask/gone.jpg", "with_mask/with_mask009.jpg", "without_mask/same.jpg",
        "a_folder/broken.jpg")}
    copy = "the same bytes as dataset/with_mask/with_mask000 copy.jpg"  # the first by path (' ' sorts before '.')
    assert reasons["dataset/with_mask/with_mask000.jpg"] == copy
    assert reasons["dataset/without_mask/same.jpg"].startswith("the same bytes under different labels")
    assert reasons["dataset/without_mask/big.jpg"] == "a Git LFS pointer, not the image"
    assert reasons["dataset/without_mask/broken.jpg"] == "not a decodable image"
    assert reasons["dataset/without_mask/gone.jpg"].startswith("absent from the source")
    assert reasons["dataset/loose.jpg"] == "not inside a class folder"
    assert "class 0 with_mask: 8 train, 2 held out" in printed and "skipped 2: not a decodable image" in printed
    odd = pd.read_csv(out / "sources.csv").set_index("source").loc[
        "dataset/with_mask/0_0_\u2248\u02d9\u25ca\u00a2 2020-02-23 132115.JPG", "file"]
    assert odd.startswith("eval/images/") or odd == "train/with_mask/0_0__2020-02-23_132115.jpg"


def test_the_held_out_part_is_disjoint_stratified_and_hides_its_answers(utk_source, tmp_path):
    out = tmp_path / "utk"
    lay_out(utk_source, out, "--heldout", "0.25", "--seed", "3")
    answers = pd.read_csv(out / "heldout_answers.csv")
    info = pd.read_csv(out / "eval" / "info.csv")
    assert info["ImageID"].tolist() == answers["ImageID"].tolist() and (info["ans"] == 0).all()
    assert sorted(p.name for p in (out / "eval" / "images").iterdir()) == sorted(info["ImageID"])
    train = files_under(out / "train" / "images")
    held = files_under(out / "eval" / "images")
    assert not set(train.values()) & set(held.values())  # no photo on both sides
    assert all(name == f"{digest}.jpg" for name, digest in held.items())  # a held-out name tells nothing
    per_class = answers["ans"].value_counts().sort_index()
    assert per_class.tolist() == [2] * 6  # a quarter of each class's 8 or 6 photos, rounded
    assert not any((out / "train").rglob("heldout_answers.csv")) and not any((out / "eval").rglob("*answers*"))


def test_utkface_labels_are_gender_times_3_plus_age_group(utk_source, tmp_path):
    out = tmp_path / "utk"
    lay_out(utk_source, out)
    attributes = pd.read_csv(out / "attributes.csv")
    expected = (attributes["gender"] == "female") * 3 + np.digitize(attributes["age"], [30, 60])
    assert (attributes["label"] == expected).all()
    assert set(attributes["race"]) <= set(real_photos.UTKFACE_RACES)
    assert pd.read_csv(out / "skipped.csv")["reason"].tolist() == ["name is not <age>_<gender>_<race>_<date>"]
    assert list(pd.read_csv(out / "train" / "train.csv").columns) == ["path", "label"]


def test_harness_loaders_read_both_layouts(mask_source, utk_source, tmp_path):
    for source, name, layout, classes in ((mask_source["bare"], "mask", "class-folder", ["with_mask", "without_mask"]),
                                          (utk_source, "utk", "path,label CSV", [str(i) for i in range(6)])):
        out = tmp_path / name
        lay_out(source, out)
        train, evaluation = load_train(out), load_eval(out)
        counts = pd.read_csv(out / "classes.csv")
        assert train.layout == layout and train.class_names["multi"] == classes
        assert np.bincount(train.labels["multi"], minlength=len(classes)).tolist() == counts["train"].tolist()
        assert evaluation.image_ids == pd.read_csv(out / "heldout_answers.csv")["ImageID"].tolist()
        assert len(evaluation.image_ids) == counts["heldout"].sum()
        assert all((train.root / path).is_file() for path in train.paths)


def test_same_output_every_time_from_a_folder_or_its_git(mask_source, utk_source, tmp_path):
    first, again, plain = tmp_path / "first", tmp_path / "again", tmp_path / "plain"
    lay_out(utk_source, first)
    lay_out(utk_source, again)
    lay_out(utk_source, again)  # rewriting its own folder replaces it
    work = tmp_path / "utk-work"
    subprocess.run(["git", "clone", "-q", str(utk_source), str(work)], check=True)
    lay_out(work, plain)
    assert photos_of(first) == photos_of(again) == photos_of(plain)
    lay_out(utk_source, tmp_path / "seed1", "--seed", "1")
    assert files_under(first / "eval") != files_under(tmp_path / "seed1" / "eval")
    # The plain folder gives the same photos as the bare one, less the object the snapshot lacks.
    lay_out(mask_source["work"], tmp_path / "mask-plain")
    skipped = pd.read_csv(tmp_path / "mask-plain" / "skipped.csv")["path"].tolist()
    assert "dataset/without_mask/gone.jpg" not in skipped and len(skipped) == 10


def test_refuses_a_folder_it_did_not_write(utk_source, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="is not a folder python -m harness.real_photos wrote"):
        lay_out(utk_source, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    lay_out(utk_source, empty)  # an empty folder is fine
    assert (empty / real_photos.MARKER).is_file()
    (empty / "my_notes.txt").write_text("mine")
    lay_out(utk_source, empty)  # written again: its own files replaced, the user's kept
    assert (empty / "my_notes.txt").read_text() == "mine"


def test_errors_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.real_photos", "--source", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m harness.real_photos: error: --source {tmp_path / 'missing'} not found: expected a git clone, "
        f"a folder or a bare git directory"]
    with pytest.raises(UserError, match="holds none of the folders"):
        lay_out(tmp_path, tmp_path / "out", "--set", "utkface")
    assert not (tmp_path / "out").exists()
