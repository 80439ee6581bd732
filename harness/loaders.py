"""The three loaders of a trial (train, validation, eval) from its parameters and data set."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import DataLoader

from harness.datasets import EvalSet, TrainSet
from harness.image_cache import cached_images
from harness.images import DecodedImages, ImageSet, make_loader
from harness.params import TrialParams
from harness.split import split_indices
from harness.transforms import train_augment

log = logging.getLogger(__name__)


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader | None
    eval: DataLoader | None
    val_ids: list[str]
    val_labels: np.ndarray
    eval_ids: list[str]


def image_source(root: Path, paths: Sequence[str], params: TrialParams):
    """The cache when it is on (and fits on disk), else decoding from disk at every access."""
    if params.cache:
        cached = cached_images(root, paths, params.img_size, params.crop, params.cache_dir or None,
                               num_workers=max(params.num_workers, 1))
        if cached is not None:
            return cached
    return DecodedImages(root, paths, params.img_size, params.crop)


def build_loaders(params: TrialParams, train_set: TrainSet, eval_set: EvalSet | None, labels: np.ndarray,
                  pin_memory: bool) -> Loaders:
    train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, params.val_ratio, params.seed)
    images = image_source(train_set.root, train_set.paths, params)

    def loader(dataset: ImageSet, shuffle: bool, batch_size: int) -> DataLoader:
        return make_loader(dataset, batch_size, shuffle, params.num_workers, params.seed, pin_memory)

    # Prediction needs no gradients, so it can take bigger batches.
    eval_batch = params.batch_size * 2
    train = loader(ImageSet(images, train_idx, labels, train_augment(params.seed)), True, params.batch_size)
    val = loader(ImageSet(images, val_idx, labels), False, eval_batch) if len(val_idx) else None
    evaluation = None
    if eval_set is not None:
        eval_images = image_source(eval_set.root, eval_set.image_ids, params)
        evaluation = loader(ImageSet(eval_images, np.arange(len(eval_set.image_ids)), None), False, eval_batch)
    log.info("%d training and %d validation images (%s split by %s), %s eval images", len(train_idx), len(val_idx),
             f"{params.val_ratio:g}", "person" if train_set.layout == "mask contest" else "image",
             len(eval_set.image_ids) if eval_set else "no")
    return Loaders(train=train, val=val, eval=evaluation,
                   val_ids=[train_set.paths[i] for i in val_idx], val_labels=labels[val_idx],
                   eval_ids=eval_set.image_ids if eval_set else [])
