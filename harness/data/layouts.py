"""Reading labelled image sets from disk: the mask contest's layout, a class-per-folder tree, or a CSV of path,label.

    <data_dir>/train/train.csv + train/images/<profile>/mask1..5, incorrect_mask, normal   (mask contest)
    <data_dir>/train/train.csv with columns path,label (paths under train/ or train/images/)
    <data_dir>/train/<class>/<image>                                                      (class folders)
    <data_dir>/eval/info.csv (ImageID) + eval/images/<ImageID>                           (what to predict)

Anything whose name starts with '.' is skipped: the real archive holds AppleDouble files ('._mask1.jpg') and
.DS_Store beside the images. Every path stays inside the data folder (harness/data/data_folder.py)."""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data.data_folder import DataFolder
from harness.data.labels import (
    AGE_TASKS,
    CLASS_NAMES,
    CLASSIFICATIONS,
    OLD_AGE,
    age_labels,
    gender_label,
    mask_label,
    multi_label,
)
from harness.errors import UserError

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# Channel statistics of the mask contest's photos (the original contest code's), and ImageNet's for other data sets.
MASK_MEAN_STD = ((0.548, 0.504, 0.479), (0.237, 0.247, 0.246))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MAX_AGE = 150  # years: an age above it (1e9, inf) is a typo, not a person


@dataclass
class TrainSet:
    """Labelled images. paths are relative to root and double as the ImageID of validation CSVs."""

    root: Path
    paths: list[str]
    labels: dict[str, np.ndarray]  # task -> class per image
    class_names: dict[str, list[str]]
    groups: np.ndarray  # split unit per image (a person: all of a person's photos fall on one side)
    group_strata: np.ndarray  # per group, what the split keeps in proportion (gender and age group, or the class)
    layout: str
    mean_std: tuple = field(default=IMAGENET_MEAN_STD)
    ages: np.ndarray | None = None  # age per image, where the layout has ages (the mask contest's)

    def task_labels(self, task: str, old_age: int = OLD_AGE) -> np.ndarray:
        """The task's labels; old_age moves the 60+ class's first age (training labels only: `--old_age`)."""
        if task not in self.labels:
            raise UserError(f"classification {task!r} needs the mask contest's layout (train/train.csv with "
                            f"gender and age); {self.root.parent} is a {self.layout} data set: use 'multi'")
        if old_age == OLD_AGE or (self.ages is not None and task not in AGE_TASKS):
            return self.labels[task]
        if self.ages is None:
            raise UserError(f"old_age {old_age} needs ages to re-label, and {self.root.parent} is a {self.layout} "
                            f"data set without them (only the mask contest's train.csv has ages): keep old_age 60")
        age = age_labels(self.ages, old_age)
        return age if task == "age" else multi_label(self.labels["mask"], self.labels["gender"], age)

    def num_classes(self, task: str) -> int:
        return len(self.class_names[task])

    def heads(self, classification: str) -> dict[str, int]:
        """The model's heads for a search-space 'classification': task -> classes, in order."""
        heads = CLASSIFICATIONS[classification]
        if len(heads) > 1 and any(task not in self.labels for task in heads):
            raise UserError(f"classification {classification!r} needs the mask contest's layout (train/train.csv "
                            f"with gender and age); {self.root.parent} is a {self.layout} data set: use 'multi'")
        self.task_labels(heads[0])  # a single head's own check and message
        return {task: self.num_classes(task) for task in heads}

    def head_labels(self, classification: str, old_age: int = OLD_AGE) -> np.ndarray:
        """[N, heads]: one label column per head of `classification`'s model (old_age: as task_labels)."""
        return np.stack([self.task_labels(task, old_age) for task in CLASSIFICATIONS[classification]], axis=1)


@dataclass
class EvalSet:
    root: Path
    image_ids: list[str]  # as eval/info.csv lists them; also the paths under root


def is_visible_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path, data_folder: DataFolder | None = None) -> list[str]:
    """Image files under folder (recursively), relative to it, sorted; dot files and dot folders skipped. A FIFO,
    socket or device named like an image, or a link leading out of the data folder (default: `folder`), is
    refused with one line; a folder named like an image is a folder."""
    data_folder = data_folder or DataFolder(folder)
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(current).relative_to(folder)
        for name in files:
            if is_visible_image(name) and data_folder.image(os.path.join(current, name), f"scanning {folder}"):
                found.append((base / name).as_posix())
    return sorted(found)


Table = dict[str, list]  # column -> its cells as text, in the file's order (pandas' NaN where a row ran short)


def read_table(path: Path, required: set[str], what: str, rows: int | None = None) -> Table:
    """The CSV's columns as text cells; a missing, unreadable or incomplete file is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path} not found: expected {what}")
    table = plain_csv(path, rows)
    if table is None:
        table = pandas_csv(path, what, rows)
    missing = required - set(table)
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(sorted(missing))}: expected {what}")
    return table


def plain_csv(path: Path, rows: int | None) -> Table | None:
    """A plain CSV (UTF-8 without a byte-order mark, a header of distinct non-empty names, every row as long as the
    header) read with the csv module: what pandas would read from it, without importing pandas, a fifth of a second
    and 30 MB of a trial's start. None for any other file: pandas reads those (pandas_csv)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or "" in header or len(set(header)) < len(header) or header[0].startswith("\ufeff"):
                return None
            cells = []
            for row in reader:
                if rows is not None and len(cells) >= rows:
                    break
                if not row:
                    continue  # a blank line: pandas skips it too
                if len(row) != len(header):
                    return None
                cells.append(row)
    except (UnicodeDecodeError, csv.Error):
        return None
    return {name: [row[i] for row in cells] for i, name in enumerate(header)}


def pandas_csv(path: Path, what: str, rows: int | None) -> Table:
    """pandas' reading (text cells, no NA guessing), whose errors name what is wrong with the file."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=rows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is not a readable CSV ({reason}): expected {what}") from None
    return {str(name): frame[name].tolist() for name in frame.columns}


PLAIN_INTEGER = re.compile(r"[+-]?\d{1,18}")


def numbers(cells: list) -> np.ndarray:
    """pandas.to_numeric(cells, errors="coerce"): plain integers as int64, anything else through pandas (NaN where
    a cell is no number)."""
    if all(isinstance(cell, str) and PLAIN_INTEGER.fullmatch(cell) for cell in cells):
        return np.array([int(cell) for cell in cells], dtype=np.int64)
    import pandas as pd

    return pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy()


def load_train(data_dir: str | os.PathLike, allow_outside_links: bool = False) -> TrainSet:
    """The labelled images of `data_dir`, every path inside it (links leaving it only with allow_outside_links)."""
    data_folder = DataFolder(data_dir, allow_outside_links)
    train_dir = Path(data_dir) / "train"
    if not train_dir.is_dir():
        raise UserError(f"{train_dir} not found: expected a data set with train/ (python -m harness.demo_data "
                        f"writes a demo one)")
    csv_path = train_dir / "train.csv"
    if csv_path.is_file():
        columns = set(read_table(csv_path, set(), "a CSV", rows=0))
        if {"gender", "age", "path"} <= columns:
            return read_mask_contest(train_dir, data_folder)
        if {"path", "label"} <= columns:
            return read_labels_csv(train_dir, data_folder)
        raise UserError(f"{csv_path} has columns {', '.join(sorted(columns))}: expected id,gender,race,age,path "
                        f"(mask contest) or path,label")
    return read_class_folders(train_dir, data_folder)


def checked_ages(table: Table, csv_path: Path) -> np.ndarray:
    """train.csv's ages as numbers, each a finite age in 0..MAX_AGE, else one line naming the row."""
    ages = numbers(table["age"])
    as_float = ages.astype(np.float64)
    wrong = ~np.isfinite(as_float) | (as_float < 0) | (as_float > MAX_AGE)
    if wrong.any():
        row = int(wrong.argmax())
        raise UserError(f"{csv_path} row {row + 2}: age {table['age'][row]!r} is not a number "
                        f"of years in 0..{MAX_AGE}")
    return ages


def people(table: Table, csv_path: Path) -> np.ndarray:
    """Per row, its person: rows with the same non-empty 'id' are one person (all their photos on one side of the
    split), numbered by first appearance (so unique ids number the rows); without ids each row is a person."""
    if "id" not in table:
        return np.arange(len(table["path"]))
    keys = [value.strip() or f"row {row}" for row, value in enumerate(table["id"])]
    number: dict[str, int] = {}  # id -> person, by first appearance (pandas.factorize's numbering)
    repeats = []
    for key in keys:
        if key in number:
            repeats.append(key)
        number.setdefault(key, len(number))
    codes = np.array([number[key] for key in keys], dtype=np.int64)
    if repeats:
        repeated = repeats[0]
        log.warning("%s lists person id %r on %d rows (and %d ids in all on several rows): each id's photos are kept "
                    "on one side of the validation split", csv_path, repeated, keys.count(repeated),
                    len(codes) - len(number))
    return codes


def profile_images(folder: Path, data_folder: DataFolder, where: str) -> list[str]:
    """The visible image files of a profile folder, sorted; anything else named like an image is refused. The
    folder listing tells a plain file without a system call; links and the rest get data_folder's checks."""
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_visible_image(entry.name):
                continue
            plain = entry.is_file(follow_symlinks=False)
            if plain:
                data_folder.inside(entry.path, where, link=False)
            if plain or data_folder.image(entry.path, where):
                names.append(entry.name)
    return sorted(names)


def read_mask_contest(train_dir: Path, data_folder: DataFolder | None = None) -> TrainSet:
    csv_path = train_dir / "train.csv"
    data_folder = data_folder or DataFolder(train_dir.parent)
    table = read_table(csv_path, {"gender", "age", "path"}, "the mask contest's train.csv (id,gender,race,age,path)")
    seen: set[str] = set()
    for profile in table["path"]:
        if profile in seen:
            raise UserError(f"{csv_path} lists profile {profile!r} twice")
        seen.add(profile)
    ages = checked_ages(table, csv_path)
    genders = np.array([gender_label(g, f"{csv_path} row {row + 2}") for row, g in enumerate(table["gender"])])
    person_of_row = people(table, csv_path)
    first_rows = np.unique(person_of_row, return_index=True)[1]  # a person's first row gives its stratum
    strata = (genders * 3 + age_labels(ages))[first_rows]
    images_dir = train_dir / "images"
    paths, rows, masks = [], [], []
    for index, profile in enumerate(table["path"]):
        where = f"{csv_path} row {index + 2}"
        folder = images_dir / data_folder.relative(profile, images_dir, where)
        if not data_folder.folder(folder, where):
            raise UserError(f"{folder} not found: train.csv lists profile {profile!r}")
        files = profile_images(folder, data_folder, where)
        if not files:
            raise UserError(f"{folder} holds no images: expected mask1..mask5, incorrect_mask and normal")
        for name in files:
            try:
                masks.append(mask_label(os.path.splitext(name)[0]))
            except UserError as error:
                raise UserError(f"{folder / name}: {error}") from None
            paths.append(f"{profile}/{name}")
            rows.append(index)
    rows = np.array(rows, dtype=np.int64)
    mask = np.array(masks, dtype=np.int64)
    gender, age = genders[rows], age_labels(ages)[rows]
    return TrainSet(
        root=images_dir, paths=paths,
        labels={"mask": mask, "gender": gender, "age": age, "multi": multi_label(mask, gender, age)},
        class_names=dict(CLASS_NAMES), groups=person_of_row[rows], group_strata=strata,
        layout="mask contest", mean_std=MASK_MEAN_STD, ages=ages[rows])


def _single_label(root: Path, paths: list[str], names: list[str], labels: np.ndarray, layout: str) -> TrainSet:
    # Each image is its own split unit, stratified by class.
    return TrainSet(root=root, paths=paths, labels={"multi": labels}, class_names={"multi": names},
                    groups=np.arange(len(paths)), group_strata=labels, layout=layout)


def read_class_folders(train_dir: Path, data_folder: DataFolder | None = None) -> TrainSet:
    data_folder = data_folder or DataFolder(train_dir.parent)
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for index, name in enumerate(classes):
        data_folder.inside(train_dir / name, f"class folder {name!r}")
        found = list_images(train_dir / name, data_folder)
        if not found and len(classes) >= 2:
            raise UserError(f"{train_dir / name} holds no images: every class folder needs at least one "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))}), or remove it")
        paths += [f"{name}/{p}" for p in found]
        labels += [index] * len(found)
    if len(classes) < 2 or not paths:
        raise UserError(f"{train_dir} holds {len(classes)} class folder(s) with {len(paths)} images: expected "
                        f"train/train.csv, or one folder of images per class (at least two)")
    return _single_label(train_dir, paths, classes, np.array(labels, dtype=np.int64), "class-folder")


def first_repeat(paths: list[str]) -> tuple[int, int] | None:
    """(first row, repeating row), 0-based, of the first path listed twice (spelled alike once normalised)."""
    seen: dict[str, int] = {}
    for row, path in enumerate(paths):
        key = os.path.normpath(path)
        if key in seen:
            return seen[key], row
        seen[key] = row
    return None


def listed_images(root: Path, paths: list[str], data_folder: DataFolder, csv_path: Path, what: str) -> None:
    """Every path a CSV lists: under `root`, listed once, a regular file inside the data folder; one line naming
    the row (or the first missing file and how many are missing) otherwise."""
    for row, path in enumerate(paths):
        data_folder.relative(path, root, f"{csv_path} row {row + 2}")
    repeat = first_repeat(paths)
    if repeat:
        raise UserError(f"{csv_path} rows {repeat[0] + 2} and {repeat[1] + 2} both list {paths[repeat[1]]!r}: "
                        f"expected each {what} once")
    base = os.fspath(root)
    missing = [p for row, p in enumerate(paths)
               if not data_folder.image(os.path.join(base, p), f"{csv_path} row {row + 2}")]
    if missing:
        raise UserError(f"{root / missing[0]} not found ({len(missing)} of the {len(paths)} images {csv_path} "
                        f"lists are missing)")


def read_labels_csv(train_dir: Path, data_folder: DataFolder | None = None) -> TrainSet:
    """Integer labels are the classes themselves (a submission wants them back); other labels are sorted names."""
    import pandas as pd  # the single-label layouts' reading is pandas' (the mask contest's is not)

    data_folder = data_folder or DataFolder(train_dir.parent)
    csv_path = train_dir / "train.csv"
    table = pd.DataFrame(read_table(csv_path, {"path", "label"}, "a CSV of path,label"), dtype=object)
    if table.empty:
        raise UserError(f"{csv_path} has no rows")
    empty = (table["label"].str.strip() == "").to_numpy()
    if empty.any():
        raise UserError(f"{csv_path} row {int(empty.argmax()) + 2}: the label is empty: expected a class name or "
                        f"number")
    as_int = pd.to_numeric(table["label"], errors="coerce")
    if as_int.notna().all() and (as_int >= 0).all() and (as_int % 1 == 0).all():
        # "1", "01" and "1.0" are the same class 1.
        labels = as_int.to_numpy(dtype=np.int64)
        if labels.max() >= len(labels):
            row = int(labels.argmax())
            raise UserError(f"{csv_path} row {row + 2}: label {table['label'].iloc[row]!r} would make "
                            f"{labels.max() + 1} classes for {len(labels)} images: expected integer labels "
                            f"0..K-1, or class names")
        names = [str(i) for i in range(int(labels.max()) + 1)]
    else:
        names = sorted(table["label"].unique())
        labels = np.searchsorted(names, table["label"].to_numpy()).astype(np.int64)
    if len(names) < 2:
        raise UserError(f"{csv_path} has a single class {names[0]!r}: expected at least two")
    paths = table["path"].tolist()
    first = data_folder.relative(paths[0], train_dir, f"{csv_path} row 2")
    root = train_dir / "images" if (train_dir / "images" / first).is_file() else train_dir
    listed_images(root, paths, data_folder, csv_path, "image")
    return _single_label(root, paths, names, labels, "path,label CSV")


def load_eval(data_dir: str | os.PathLike, allow_outside_links: bool = False) -> EvalSet | None:
    """The images to predict, in eval/info.csv's order; without info.csv, every image of eval/images sorted;
    None when the data set has no eval/ folder."""
    data_folder = DataFolder(data_dir, allow_outside_links)
    eval_dir = Path(data_dir) / "eval"
    images_dir = eval_dir / "images"
    info = eval_dir / "info.csv"
    if info.is_file():
        ids = read_table(info, {"ImageID"}, "eval/info.csv with an ImageID column")["ImageID"]
        if not ids:
            raise UserError(f"{info} lists no images: expected one ImageID per image to predict (or no eval/ "
                            f"folder, to train without predicting)")
        listed_images(images_dir, ids, data_folder, info, "ImageID")
        return EvalSet(images_dir, ids)
    if images_dir.is_dir():
        return EvalSet(images_dir, list_images(images_dir, data_folder))
    return None


def data_fingerprint(train_set: TrainSet, eval_set: EvalSet | None) -> str:
    """What the validation split and the soft CSVs' rows depend on: the images' paths, labels and split units,
    the classes, and the eval set's ImageIDs. params.json records it; a resume refuses a data set that changed."""
    described = {"layout": train_set.layout, "paths": train_set.paths,
                 "labels": {task: labels.tolist() for task, labels in sorted(train_set.labels.items())},
                 "groups": train_set.groups.tolist(), "strata": train_set.group_strata.tolist(),
                 "classes": train_set.class_names, "eval": eval_set.image_ids if eval_set else None}
    return hashlib.sha1(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
