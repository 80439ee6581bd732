"""A deterministic synthetic data set in the mask contest's exact layout, quirks included, for demos and tests.

    python -m harness.demo_data --out data/demo [--people 120] [--eval 300] [--size 384x512] [--seed 0]

Each photo is a drawn face whose labels are visible, so a small model learns them in a few epochs: the mask
(five styles worn over nose and mouth, worn below the nose, or none), the gender (short or long hair) and the age
group (hair colour: dark under 30, grey-brown from 30 to 59, white from 60). The layout follows the real archive:
train/train.csv (id,gender,race,age,path), train/images/<id>_<gender>_<race>_<age>/mask1..5, incorrect_mask, normal
with mixed .jpg/.jpeg/.png extensions, AppleDouble ('._*') files and .DS_Store beside them; eval/info.csv
(ImageID,ans) and eval/images/<ImageID>. The eval set's true answers go to eval_answers.csv at the top (demo only:
the real contest keeps them hidden).

Writing into a folder it wrote before replaces its own files only (harness/data/owned_folder.py): files the user
added there, or changed, stay."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.labels import MASK_STEMS, age_label, multi_label
from harness.data.opencv import cv2
from harness.data.owned_folder import rewritten
from harness.errors import UserError

EXTENSIONS = (".jpg", ".jpeg", ".png")
EXTENSION_ODDS = (0.6, 0.2, 0.2)  # mostly .jpg, as in the real archive
# Ages on both sides of each boundary, so the label rules are exercised (59 is class 1, 60 is class 2).
AGES = (18, 22, 25, 29, 30, 35, 42, 50, 55, 59, 60, 60, 62)
HAIR_BY_AGE = ((35, 25, 20), (125, 110, 95), (235, 235, 230))
SKIN = ((224, 172, 140), (198, 134, 66), (141, 85, 36), (255, 219, 172))
MASK_COLOURS = ((245, 245, 245), (90, 160, 230), (30, 30, 30), (200, 90, 120), (110, 170, 90))
# Marks a folder as a demo set written here, listing the files written: only those are ever replaced.
MARKER = ".harness-demo-data"
TOOL = "python -m harness.demo_data"
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4050)


def draw_face(rng: np.random.Generator, width: int, height: int, mask_stem: str, gender: int,
              age_group: int) -> np.ndarray:
    """An RGB portrait; coordinates are fractions of the frame so every size looks the same."""
    top, bottom = rng.integers(60, 200, size=3), rng.integers(60, 200, size=3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.float32)
    image = np.ascontiguousarray(image.astype(np.uint8))
    cx = width * (0.5 + rng.uniform(-0.03, 0.03))
    cy = height * (0.47 + rng.uniform(-0.03, 0.03))
    rx, ry = width * rng.uniform(0.22, 0.26), height * rng.uniform(0.22, 0.26)
    hair = tuple(int(c) for c in np.clip(np.array(HAIR_BY_AGE[age_group]) + rng.integers(-12, 13, 3), 0, 255))
    if gender == 1:  # long hair falls past the face on both sides
        cv2.rectangle(image, (int(cx - rx * 1.35), int(cy - ry * 0.6)), (int(cx + rx * 1.35), int(cy + ry * 1.6)),
                      hair, -1)
    cv2.ellipse(image, (int(cx), int(cy - ry * 0.45)), (int(rx * 1.15), int(ry * 0.8)), 0, 180, 360, hair, -1)
    skin = SKIN[rng.integers(len(SKIN))]
    cv2.ellipse(image, (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360, skin, -1)
    cv2.ellipse(image, (int(cx), int(cy - ry * 0.55)), (int(rx * 1.05), int(ry * 0.45)), 0, 180, 360, hair, -1)
    for side in (-1, 1):
        cv2.circle(image, (int(cx + side * rx * 0.4), int(cy - ry * 0.15)), max(2, int(rx * 0.09)), (20, 20, 20), -1)
    nose_y, mouth_y = cy + ry * 0.15, cy + ry * 0.5
    cv2.line(image, (int(cx), int(cy - ry * 0.05)), (int(cx), int(nose_y)), (90, 50, 40), max(2, int(rx * 0.05)))
    cv2.line(image, (int(cx - rx * 0.3), int(mouth_y)), (int(cx + rx * 0.3), int(mouth_y)), (170, 30, 40),
             max(2, int(rx * 0.07)))
    label = MASK_STEMS[mask_stem]
    if label != 2:
        style = int(mask_stem[-1]) - 1 if label == 0 else int(rng.integers(len(MASK_COLOURS)))
        colour = MASK_COLOURS[style]
        mask_top = cy - ry * 0.1 if label == 0 else mouth_y - ry * 0.12  # worn over the nose, or below it
        cv2.rectangle(image, (int(cx - rx * 0.85), int(mask_top)), (int(cx + rx * 0.85), int(cy + ry * 0.85)),
                      colour, -1)
        for strap in (-1, 1):
            cv2.line(image, (int(cx + strap * rx * 0.85), int(mask_top)), (int(cx + strap * rx * 1.05),
                     int(cy - ry * 0.2)), colour, max(2, int(rx * 0.04)))
    noise = rng.integers(-10, 11, size=image.shape, dtype=np.int16)  # sensor-like grain, cheaply
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def save(path: Path, image: np.ndarray) -> None:
    options = [cv2.IMWRITE_PNG_COMPRESSION, 1] if path.suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 90]
    ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise UserError(f"could not write {path}")


def generate(out: Path, people: int = 120, eval_images: int = 300, width: int = 384, height: int = 512,
             seed: int = 0, jpeg_only: bool = False) -> Path:
    """Write the data set into `out` (a new or empty folder, or one it wrote before: its own files there are
    replaced, nothing else). Returns `out`. jpeg_only: every photo a .jpg (benchmarks)."""
    if people < 6:
        raise UserError(f"--people must be at least 6 (every gender x age group), got {people}")
    rng = np.random.default_rng(seed)
    with rewritten(Path(out), MARKER, TOOL) as staging:
        write_train(staging, rng, people, width, height, jpeg_only)
        if eval_images:  # none: no eval/ at all, which trials read as "train without predicting"
            write_eval(staging, rng, eval_images, width, height, seed)
    return out


def write_train(out: Path, rng: np.random.Generator, people: int, width: int, height: int, jpeg_only: bool) -> None:
    images_dir = out / "train" / "images"
    images_dir.mkdir(parents=True)
    rows = []
    for index in range(people):
        person_id = f"{index + 1:06d}"
        # Cycle through genders and ages first, so even a small set holds every group.
        gender = "female" if index % 2 else "male"
        age = AGES[(index // 2) % len(AGES)] if index < 2 * len(AGES) else int(rng.choice(AGES))
        profile = f"{person_id}_{gender}_Asian_{age}"
        folder = images_dir / profile
        folder.mkdir()
        for stem in MASK_STEMS:
            extension = ".jpg" if jpeg_only else str(rng.choice(EXTENSIONS, p=EXTENSION_ODDS))
            save(folder / f"{stem}{extension}",
                 draw_face(rng, width, height, stem, int(gender == "female"), age_label(age)))
        if index % 10 == 0:  # the archive's macOS leftovers
            (folder / f"._mask1{extension}").write_bytes(APPLE_DOUBLE)
            (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
            (images_dir / f"._{profile}").write_bytes(APPLE_DOUBLE)
        rows.append({"id": person_id, "gender": gender, "race": "Asian", "age": age, "path": profile})
    pd.DataFrame(rows).to_csv(out / "train" / "train.csv", index=False)
    (images_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))


def write_eval(out: Path, rng: np.random.Generator, eval_images: int, width: int, height: int, seed: int) -> None:
    eval_dir = out / "eval" / "images"
    eval_dir.mkdir(parents=True)
    answers = []
    stems = list(MASK_STEMS)
    for index in range(eval_images):
        stem = stems[rng.integers(len(stems))]
        gender, age = int(rng.integers(2)), int(rng.choice(AGES))
        image_id = hashlib.sha1(f"{seed}-{index}".encode()).hexdigest() + ".jpg"
        save(eval_dir / image_id, draw_face(rng, width, height, stem, gender, age_label(age)))
        answers.append({"ImageID": image_id, "ans": multi_label(MASK_STEMS[stem], gender, age_label(age))})
    (eval_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    pd.DataFrame({"ImageID": [a["ImageID"] for a in answers], "ans": 0}).to_csv(out / "eval" / "info.csv",
                                                                                 index=False)
    pd.DataFrame(answers).to_csv(out / "eval_answers.csv", index=False)
