"""The images both sides of a comparison with timm's train.py read: one generated data set in the mask contest's
layout for trial.py, and the same photos as an ImageFolder (symlinks) for timm, split into train/ and val/ by the
trial's own holdout split, so both train and validate on the same images; and how each side is run on them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import trial_command
from benchmarks.runner import Bench
from benchmarks.trial_speed.fixtures import fit_setup, photos, trial_params
from harness.data.layouts import TrainSet
from harness.errors import UserError

# What "bf16" and "fp32" mean on each side: each side's own flags for bf16 autocast with channels_last, and for fp32.
TRIAL_PRECISION = {"bf16": ["--amp", "bf16", "--channels_last", "true"], "fp32": ["--amp", "off"]}
TIMM_PRECISION = {"bf16": ["--amp", "--amp-dtype", "bfloat16", "--channels-last"], "fp32": []}


@dataclass(frozen=True)
class SameImages:
    data: Path          # the mask contest's layout: what trial.py reads
    folder: Path        # <folder>/{train,val}/<class, two digits>/<photo>: what timm's train.py reads
    cache_dir: Path     # the trial's image cache, built before any timed run
    train_images: int


@dataclass(frozen=True)
class Case:
    """One setting both sides run: the model, the precision (bf16 or fp32), and the shared training settings."""
    model: str
    precision: str
    img_size: int
    batch_size: int
    workers: int
    epochs: int
    device: str

    @property
    def label(self) -> str:
        return f"{self.model} {self.precision}{' + channels_last' if self.precision == 'bf16' else ''}"


def same_images(bench: Bench, people: int, img_size: int) -> SameImages:
    """Generated once per suite run; the image cache and the page cache are warm before the first timed run, as
    for every trial after a search's first."""
    data = photos(bench, people)
    setup, split = fit_setup(trial_params(bench, data, img_size=img_size))
    setup.loaders(split.train_idx, split.val_idx)  # builds the trial's image cache
    train_set = setup.data.train_set
    folder = image_folder(train_set, train_set.task_labels("multi"), split.train_idx, split.val_idx,
                          bench.scratch / f"imagefolder-{people}")
    for path in train_set.paths:  # into the page cache: timm decodes these files every epoch
        (train_set.root / path).read_bytes()
    return SameImages(data, folder, bench.scratch / "cache", len(split.train_idx))


def image_folder(train_set: TrainSet, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                 folder: Path) -> Path:
    """Symlinks <folder>/{train,val}/<label:02d>/<person>_<photo>; every class folder on both sides, so timm's
    sorted folder names give class index == label and both sides have the same classes."""
    classes = int(labels.max()) + 1
    for split, indices in (("train", train_idx), ("val", val_idx)):
        for label in range(classes):
            (folder / split / f"{label:02d}").mkdir(parents=True, exist_ok=True)
        for i in indices:
            target = folder / split / f"{int(labels[i]):02d}" / train_set.paths[i].replace("/", "_")
            if not target.exists():
                target.symlink_to(Path(train_set.root, train_set.paths[i]).resolve())
    return folder


def timm_script(timm_dir: Path | None) -> Path:
    if timm_dir is None or not (Path(timm_dir) / "train.py").is_file():
        raise UserError(f"--timm_dir {timm_dir}: expected a pytorch-image-models checkout holding train.py "
                        f"(git clone https://github.com/huggingface/pytorch-image-models; docs/speed.md)")
    return Path(timm_dir).resolve() / "train.py"


def trial_args(images: SameImages, case: Case, output: Path, extra: list[str]) -> list[str]:
    return trial_command(images.data, output, images.cache_dir, "--model", case.model, "--img_size",
                         str(case.img_size), "--batch_size", str(case.batch_size), "--num_workers",
                         str(case.workers), "--epochs", str(case.epochs), "--device", case.device,
                         *TRIAL_PRECISION[case.precision], *extra)


def timm_args(script: Path, images: SameImages, case: Case, output: Path) -> list[str]:
    """timm's train.py at its best CPU settings for the case: its defaults (SGD, its augmentations, its prefetcher,
    validation every epoch, a checkpoint per epoch) with warm-up off (it changes the rate, not the speed)."""
    return [str(script), "--data-dir", str(images.folder), "--train-split", "train", "--val-split", "val",
            "--model", case.model, "--num-classes", "18", "--input-size", "3", str(case.img_size),
            str(case.img_size), "--batch-size", str(case.batch_size), "--epochs", str(case.epochs),
            "--warmup-epochs", "0", "--device", case.device, "--workers", str(case.workers), "--output", str(output),
            "--experiment", "run", "--checkpoint-hist", "1", *TIMM_PRECISION[case.precision]]
