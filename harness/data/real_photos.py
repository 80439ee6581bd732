"""Lay out a real labelled photo set, taken from a public repository's snapshot, in the harness's layouts.

    python -m harness.real_photos --source PATH --out data/real/NAME [--set NAME] [--heldout 0.2] [--seed 0]

PATH is a git clone or a plain folder (its files are read as they are on disk), or a bare git directory such as
the fetch tool's /work/.mirror/<owner>+<name>/repo (the files of its HEAD are read with git; nothing is checked
out). The sets, found in the source by their folder when --set is not given:

  face-mask        chandrikadeb7/Face-Mask-Detection: dataset/<class>/<image> (with_mask, without_mask)
  face-mask-small  prajnasb/observations: experiements/data/<class>/<image> (its masks are partly pasted on)
  utkface          UTKFace crops named <age>_<gender>_<race>_<date>.jpg.chip.jpg, e.g. crop_part1/ in
                   Mohanish-5744/Major_Ensemble_Gender; label = gender*3 + age group (male 0, female 1; age
                   under 30 = 0, 30 to 59 = 1, 60 and over = 2: the mask contest's gender and age rules)

What --out receives:
  train/<class>/<image>                          a folder set (the harness's class-folder layout)
  train/train.csv (path,label) + train/images/   utkface: the mask contest's layout wants seven mask photos per
                                                 person, which a face set without masks lacks, so the combined
                                                 class goes in a path,label CSV (train.csv must not have both
                                                 gender and age columns, or the harness reads it as the contest's)
  eval/info.csv (ImageID,ans=0) + eval/images/   the held-out part (--heldout of each class, drawn with --seed);
                                                 an ImageID is the image's SHA-1, so its name tells nothing
  heldout_answers.csv                            ImageID,ans: the held-out answers, outside train/ and eval/
  classes.csv, sources.csv, skipped.csv          class names and counts; where each image came from; what was
                                                 left out and why (attributes.csv too for utkface: age, gender, race)

Hidden files, names without an image extension, files the snapshot lacks (it leaves out files of 4 MiB and more
and Git LFS content), images that do not decode, names without labels and byte-identical copies (the first copy
is kept; copies under different labels are all dropped) are skipped and listed. The output is written beside
--out: writing a folder this tool wrote before replaces its own files only (a file added there is kept), any
other non-empty folder is refused."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.labels import CLASS_NAMES, age_label, gender_label
from harness.data.layouts import IMAGE_EXTENSIONS
from harness.data.opencv import cv2
from harness.data.owned_folder import rewritten
from harness.errors import UserError

PROG = "python -m harness.real_photos"
MARKER = ".real-photos.json"  # the files this tool wrote there (harness/data/owned_folder.py): only those are replaced
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
UTKFACE_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_[^_]+$")  # age_gender_race_date, before the extension
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")
SHOWN_PER_REASON = 20  # skipped files printed per reason; skipped.csv lists them all


@dataclass(frozen=True)
class PhotoSet:
    name: str
    kind: str  # "folders": <class>/<image>; "utkface": labels in the file name
    folders: tuple[str, ...]  # where the set lives in a source; the first one present is used
    origin: str


SETS = {s.name: s for s in (
    PhotoSet("face-mask", "folders", ("dataset",), "github.com/chandrikadeb7/Face-Mask-Detection"),
    PhotoSet("face-mask-small", "folders", ("experiements/data",), "github.com/prajnasb/observations"),
    PhotoSet("utkface", "utkface", ("crop_part1", "UTKFace", "utkface", "data/UTKFace", "data/crop_part1"),
             "UTKFace (susanqq.github.io/UTKFace), e.g. github.com/Mohanish-5744/Major_Ensemble_Gender"),
)}


@dataclass
class Photo:
    source: str  # path in the source
    label: int  # the class's index (set by number_classes for a folder set)
    class_name: str
    sha1: str
    extension: str
    staged: Path
    attributes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- sources
class FolderSource:
    """A clone or a plain folder: files as they are on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has_folder(self, folder: str) -> bool:
        return (self.root / folder).is_dir()

    def files(self, folder: str) -> list[str]:
        found = []
        for current, dirs, names in os.walk(self.root / folder):
            dirs[:] = [d for d in dirs if d != ".git"]
            base = Path(current).relative_to(self.root)
            found += [(base / name).as_posix() for name in names]
        return sorted(found)

    def read(self, path: str) -> bytes | None:
        file = self.root / path
        return None if file.is_symlink() or not file.is_file() else file.read_bytes()

    def commit(self) -> str:
        if not (self.root / ".git").exists():
            return ""
        done = subprocess.run(["git", "-C", str(self.root), "rev-parse", "HEAD"], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    def close(self) -> None:
        pass


class GitSource:
    """A bare git directory: the files of HEAD, read with `git ls-tree` and `git cat-file --batch`."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.head = self.git("rev-parse", "--verify", "HEAD^{commit}").strip()
        self.blobs: dict[str, str] = {}
        self.batch: subprocess.Popen | None = None

    def git(self, *args: str) -> str:
        try:
            done = subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True)
        except FileNotFoundError:
            raise UserError(f"{self.git_dir} is a bare git directory, and reading it needs git, which is not on "
                            f"PATH") from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise UserError(f"git could not read {self.git_dir} ({reason}): expected a bare git directory with "
                            f"a HEAD commit")
        return done.stdout

    def has_folder(self, folder: str) -> bool:
        listed = self.git("ls-tree", "--full-tree", "HEAD", "--", folder.rstrip("/"))
        return any(line.split()[1] == "tree" for line in listed.splitlines() if line.strip())

    def files(self, folder: str) -> list[str]:
        paths = []
        for entry in self.git("ls-tree", "-r", "-z", "--full-tree", "HEAD", "--", folder).split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob":  # a submodule (commit) has no files here
                self.blobs[path] = sha if mode != "120000" else ""
                paths.append(path)
        return sorted(paths)

    def read(self, path: str) -> bytes | None:
        sha = self.blobs.get(path)
        if not sha:  # a symbolic link
            return None
        if self.batch is None:
            self.batch = subprocess.Popen(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.batch.stdin.write(sha.encode() + b"\n")
        self.batch.stdin.flush()
        header = self.batch.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":  # "<sha> missing": the snapshot lacks it
            return None
        data = self.batch.stdout.read(int(header[2]))
        self.batch.stdout.read(1)  # the newline after the content
        return data

    def commit(self) -> str:
        return self.head

    def close(self) -> None:
        if self.batch is not None:
            self.batch.stdin.close()
            self.batch.wait()
            self.batch = None


Source = FolderSource | GitSource


def open_source(path: Path) -> Source:
    if not path.exists():
        raise UserError(f"--source {path} not found: expected a git clone, a folder or a bare git directory")
    if not path.is_dir():
        raise UserError(f"--source {path} is a file: expected a git clone, a folder or a bare git directory")
    for git_dir in (path, path / "repo"):  # the fetch tool's folder holds its bare git directory in repo/
        if (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir():
            return GitSource(git_dir)
    return FolderSource(path)


def find_set(source: Source, name: str | None) -> tuple[PhotoSet, str]:
    """The set (named, or the first whose folder the source has) and its folder in the source."""
    candidates = [SETS[name]] if name else list(SETS.values())
    for photo_set in candidates:
        for folder in photo_set.folders:
            if source.has_folder(folder):
                return photo_set, folder
    wanted = "; ".join(f"{s.name}: {' or '.join(f + '/' for f in s.folders)}" for s in candidates)
    raise UserError(f"the source holds none of the folders its set needs ({wanted})")


# ---------------------------------------------------------------------------------------------------- labels
def folder_label(relative: str) -> str | None:
    """The class folder of a folder set's image (its first folder), or None for a file outside any."""
    parts = relative.split("/")
    return parts[0] if len(parts) >= 2 else None


def utkface_attributes(name: str) -> dict | None:
    """{'age', 'gender', 'race'} from '<age>_<gender>_<race>_<date>.jpg.chip.jpg', or None."""
    stem = name.split(".", 1)[0]
    match = UTKFACE_NAME.match(stem)
    if not match:
        return None
    age, gender, race = (int(part) for part in match.groups())
    return {"age": age, "gender": CLASS_NAMES["gender"][gender], "race": UTKFACE_RACES[race]}


def utkface_label(attributes: dict) -> int:
    return gender_label(attributes["gender"]) * 3 + age_label(attributes["age"])


def utkface_class_names() -> list[str]:
    return [f"{gender}/{age}" for gender in CLASS_NAMES["gender"] for age in CLASS_NAMES["age"]]


# ---------------------------------------------------------------------------------------------------- reading
def name_problem(relative: str) -> str | None:
    if any(part.startswith(".") for part in relative.split("/")):
        return "hidden (a name starting with '.')"
    extension = os.path.splitext(relative)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        return f"not an image name (extension {extension or 'none'!r})"
    return None


def content_problem(data: bytes | None) -> str | None:
    if data is None:
        return "absent from the source (a snapshot leaves out files of 4 MiB and more) or not a regular file"
    if data.startswith(LFS_POINTER):
        return "a Git LFS pointer, not the image"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return "not a decodable image" if image is None else None


def label_of(photo_set: PhotoSet, relative: str) -> tuple[str | dict | None, str | None]:
    """(the class folder, or a UTKFace photo's attributes; None) or (None, why the name has no label)."""
    if photo_set.kind == "utkface":
        attributes = utkface_attributes(relative.rsplit("/", 1)[-1])
        return (attributes, None) if attributes else (None, "name is not <age>_<gender>_<race>_<date>")
    label = folder_label(relative)
    return (label, None) if label else (None, "not inside a class folder")


def read_photos(source: Source, photo_set: PhotoSet, folder: str, staging: Path, skipped: list[dict]) -> list[Photo]:
    """Every usable image of the set, in source path order, each staged under `staging` as it is read; what is
    left out goes to `skipped`."""
    photos = []
    for path in source.files(folder):
        relative = path[len(folder):].lstrip("/")
        label, reason = None, name_problem(relative)
        if reason is None:
            label, reason = label_of(photo_set, relative)
        data = None if reason else source.read(path)
        reason = reason or content_problem(data)
        if reason:
            skipped.append({"path": path, "reason": reason})
        else:
            photos.append(stage(path, label, data, staging))
    return photos


def stage(path: str, label: str | dict, data: bytes, staging: Path) -> Photo:
    sha1 = hashlib.sha1(data).hexdigest()
    extension = os.path.splitext(path)[1].lower()
    staged = staging / f"{sha1}{extension}"
    staged.write_bytes(data)
    if isinstance(label, dict):
        number = utkface_label(label)
        return Photo(path, number, utkface_class_names()[number], sha1, extension, staged, label)
    return Photo(path, -1, label, sha1, extension, staged)


def number_classes(photos: list[Photo], photo_set: PhotoSet) -> list[str]:
    """The class names in the harness's order, with each photo's label set to its class's index: a folder set's
    classes are its folders sorted by name (as the harness reads train/<class>/), UTKFace's the six fixed ones."""
    classes = utkface_class_names() if photo_set.kind == "utkface" else sorted({p.class_name for p in photos})
    for photo in photos:
        photo.label = classes.index(photo.class_name)
    return classes


def drop_copies(photos: list[Photo], skipped: list[dict]) -> list[Photo]:
    """Byte-identical copies: the first (by source path) stays; copies under different labels all go."""
    by_content: dict[str, list[Photo]] = {}
    for photo in photos:
        by_content.setdefault(photo.sha1, []).append(photo)
    kept = []
    for copies in by_content.values():
        if len({photo.class_name for photo in copies}) > 1:
            others = ", ".join(photo.source for photo in copies)
            skipped += [{"path": photo.source, "reason": f"the same bytes under different labels ({others})"}
                        for photo in copies]
            continue
        kept.append(copies[0])
        skipped += [{"path": photo.source, "reason": f"the same bytes as {copies[0].source}"}
                    for photo in copies[1:]]
    return sorted(kept, key=lambda photo: photo.source)


# ---------------------------------------------------------------------------------------------------- layout
def heldout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the held-out images: round(fraction x n) of each class, drawn with the seed (at least one of a
    class always stays in train)."""
    rng = np.random.default_rng(seed)
    heldout = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(len(members) - 1, int(np.floor(len(members) * fraction + 0.5)))
        heldout[rng.permutation(members)[:count]] = True
    return heldout


def safe_name(name: str) -> str:
    stem, extension = os.path.splitext(name)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") + extension.lower()


def train_path(photo: Photo, folder: str, taken: set[str]) -> str:
    """A readable, unique name for the photo under `folder` (case-insensitively unique too)."""
    name = safe_name(photo.source.rsplit("/", 1)[-1])
    if f"{folder}/{name}".lower() in taken:
        stem, extension = os.path.splitext(name)
        name = f"{stem}-{photo.sha1[:10]}{extension}"
    taken.add(f"{folder}/{name}".lower())
    return f"{folder}/{name}" if folder else name


def write_layout(photos: list[Photo], heldout: np.ndarray, photo_set: PhotoSet, classes: list[str],
                 out: Path) -> list[dict]:
    """Moves the staged photos into train/ and eval/ and writes the CSVs; returns a record per photo."""
    records, taken = [], set()
    images = out / "train" / ("images" if photo_set.kind == "utkface" else "")
    for photo, held in zip(photos, heldout):
        if held:
            relative, target = f"{photo.sha1}{photo.extension}", out / "eval" / "images"
        else:
            folder = "" if photo_set.kind == "utkface" else classes[photo.label]
            relative, target = train_path(photo, folder, taken), images
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        photo.staged.rename(target / relative)
        records.append({"split": "heldout" if held else "train", "path": relative,
                        "file": (target / relative).relative_to(out).as_posix(), "label": photo.label,
                        "class": classes[photo.label], "source": photo.source, "sha1": photo.sha1,
                        **photo.attributes})
    table = pd.DataFrame(records)
    train, held = table[table["split"] == "train"], table[table["split"] == "heldout"].sort_values("path")
    if photo_set.kind == "utkface":
        train[["path", "label"]].to_csv(out / "train" / "train.csv", index=False)
        table[["split", "path", "label", "age", "gender", "race", "source"]].to_csv(out / "attributes.csv",
                                                                                   index=False)
    pd.DataFrame({"ImageID": held["path"], "ans": 0}).to_csv(out / "eval" / "info.csv", index=False)
    pd.DataFrame({"ImageID": held["path"], "ans": held["label"]}).to_csv(out / "heldout_answers.csv", index=False)
    table[["split", "file", "label", "source", "sha1"]].to_csv(out / "sources.csv", index=False)
    return records


def write_classes(records: list[dict], classes: list[str], out: Path) -> pd.DataFrame:
    counts = Counter((record["label"], record["split"]) for record in records)
    table = pd.DataFrame({"label": range(len(classes)), "class": classes,
                          "train": [counts[(i, "train")] for i in range(len(classes))],
                          "heldout": [counts[(i, "heldout")] for i in range(len(classes))]})
    table.to_csv(out / "classes.csv", index=False)
    return table


# ---------------------------------------------------------------------------------------------------- output folder
# ---------------------------------------------------------------------------------------------------- reporting
def print_report(classes: pd.DataFrame, skipped: list[dict], out: Path) -> None:
    for label, name, train, held in classes[["label", "class", "train", "heldout"]].itertuples(index=False):
        print(f"  class {label} {name}: {train} train, {held} held out")
    print(f"  total: {classes['train'].sum()} train, {classes['heldout'].sum()} held out, {len(skipped)} skipped")
    by_reason: dict[str, list[str]] = {}
    for entry in skipped:
        copy = entry["reason"].startswith("the same bytes")
        shown = f"{entry['path']} ({entry['reason']})" if copy else entry["path"]
        by_reason.setdefault("byte-identical copies" if copy else entry["reason"], []).append(shown)
    for reason, paths in by_reason.items():
        print(f"  skipped {len(paths)}: {reason}")
        for path in paths[:SHOWN_PER_REASON]:
            print(f"    {path}")
        if len(paths) > SHOWN_PER_REASON:
            print(f"    ... and {len(paths) - SHOWN_PER_REASON} more (all in {out / 'skipped.csv'})")


def write_origin(out: Path, photo_set: PhotoSet, source: Path, commit: str, heldout: float, seed: int) -> None:
    (out / "origin.json").write_text(json.dumps({"set": photo_set.name, "origin": photo_set.origin,
                                                 "source": str(source), "commit": commit or "unknown",
                                                 "heldout": heldout, "seed": seed}, indent=2) + "\n")

# ---------------------------------------------------------------------------------------------------- main
def lay_out(source_path: Path, out: Path, set_name: str | None, heldout: float, seed: int) -> None:
    """The set written into `out`: a folder this tool wrote before has its own files replaced, and only those
    (harness/data/owned_folder.py: a file the user added there is never touched)."""
    source = open_source(source_path)
    try:
        photo_set, folder = find_set(source, set_name)
        with rewritten(out, MARKER, PROG) as partial:
            skipped: list[dict] = []
            (partial / ".photos").mkdir()
            photos = read_photos(source, photo_set, folder, partial / ".photos", skipped)
            commit = source.commit()
            photos = drop_copies(photos, skipped)
            classes = number_classes(photos, photo_set)
            if len({photo.label for photo in photos}) < 2:
                raise UserError(f"{source_path}/{folder} holds {len(photos)} usable images in fewer than two "
                                f"classes: nothing to classify; nothing was written")
            labels = np.array([photo.label for photo in photos])
            records = write_layout(photos, heldout_mask(labels, heldout, seed), photo_set, classes, partial)
            table = write_classes(records, classes, partial)
            pd.DataFrame(skipped, columns=["path", "reason"]).to_csv(partial / "skipped.csv", index=False)
            shutil.rmtree(partial / ".photos")
            write_origin(partial, photo_set, source_path, commit, heldout, seed)
    finally:
        source.close()
    print(f"wrote {photo_set.name} from {source_path}/{folder} (commit {commit[:12] or 'unknown'}) to {out}:")
    print_report(table, skipped, out)
