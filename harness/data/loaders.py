"""The three loaders of a trial (train, validation, eval) from a data set, its split and plain settings."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from harness.data.batches import DecodedImages, ImageSet, JoinedImages, StartableLoader, make_loader
from harness.data.image_cache import cached_images
from harness.data.layouts import EvalSet, TrainSet
from harness.data.transforms import TrainAugment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int
    num_workers: int
    seed: int  # shuffling and augmentations
    img_size: int
    crop: float
    cache: bool  # decode once into the shared image cache
    cache_dir: str  # "": the default cache folder
    pin_memory: bool
    worker_nice: int = 0  # the workers' niceness: above 0 they yield the cores to the training threads
    eval_batch_size: int = 0  # validation and eval batches; 0: batch_size


def eval_batch_size(batch_size: int, device_type: str) -> int:
    """Prediction keeps no activations for a backward pass, so a GPU predicts twice the training batch at once, and
    faster. A CPU gains nothing from it (the same epoch time at 1x and 2x, resnet18 at 224 px) and its peak RSS
    grows by up to the bigger batch's activations (about 100 MB there, past the training steps' peak): 1x."""
    return batch_size * 2 if device_type == "cuda" else batch_size


@dataclass
class Loaders:
    train: StartableLoader
    val: DataLoader | None
    eval: DataLoader | None
    val_ids: list[str]
    val_labels: np.ndarray  # [N_val, heads]
    eval_ids: list[str]


def image_source(root: Path, paths: Sequence[str], settings: LoaderSettings):
    """The cache when it is on (and fits on disk), else decoding from disk at every access."""
    if settings.cache:
        cached = cached_images(root, paths, settings.img_size, settings.crop, settings.cache_dir or None,
                               num_workers=max(settings.num_workers, 1))
        if cached is not None:
            return cached
    return DecodedImages(root, paths, settings.img_size, settings.crop)


@dataclass(frozen=True)
class TrainingDraw:
    """What the training loader draws from besides the split's own images: their training labels when they differ
    from the validation labels (`--old_age`), sampling weights (`--sampler weighted`: one per drawn image, the
    added ones included), eval images added to training with their labels (pseudo-labels), and whether a batch's
    labels end with each image's index into the joined images (soft targets look their rows up by it)."""
    labels: np.ndarray | None = None          # [N, heads] for every training-set image
    weights: np.ndarray | None = None
    added: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # eval positions
    added_labels: np.ndarray | None = None    # [len(added), heads]
    with_index: bool = False


def build_loaders(train_set: TrainSet, eval_set: EvalSet | None, labels: np.ndarray, train_idx: np.ndarray,
                  val_idx: np.ndarray, settings: LoaderSettings, draw: TrainingDraw | None = None) -> Loaders:
    """labels: [N, heads] (or a vector for one head) for every image of train_set: the validation labels, and the
    training labels unless draw.labels differs. Added eval images join the training draw only, never validation."""
    draw = draw or TrainingDraw()
    labels = labels[:, None] if labels.ndim == 1 else labels
    train_labels = labels if draw.labels is None else draw.labels[:, None] if draw.labels.ndim == 1 else draw.labels
    images = image_source(train_set.root, train_set.paths, settings)
    eval_images = image_source(eval_set.root, eval_set.image_ids, settings) if eval_set is not None else None

    def loader(dataset: ImageSet, shuffle: bool, batch_size: int, weights: np.ndarray | None = None
               ) -> StartableLoader:
        return make_loader(dataset, batch_size, shuffle, settings.num_workers, settings.seed, settings.pin_memory,
                           weights, settings.worker_nice)

    eval_batch = settings.eval_batch_size or settings.batch_size
    source, indices = images, train_idx
    if len(draw.added):
        source = JoinedImages(images, eval_images)
        indices = np.concatenate([train_idx, len(images) + draw.added])
        train_labels = np.concatenate([train_labels, np.full((len(eval_images), train_labels.shape[1]), -1)])
        train_labels[len(images) + draw.added] = draw.added_labels
    train = loader(ImageSet(source, indices, train_labels, TrainAugment(settings.seed), draw.with_index), True,
                   settings.batch_size, draw.weights)
    val = loader(ImageSet(images, val_idx, labels), False, eval_batch) if len(val_idx) else None
    evaluation = None
    if eval_images is not None:
        evaluation = loader(ImageSet(eval_images, np.arange(len(eval_set.image_ids)), None), False, eval_batch)
    log.info("%d training%s and %d validation images (split by %s), %s eval images", len(train_idx),
             f" (+{len(draw.added)} pseudo-labelled eval)" if len(draw.added) else "", len(val_idx),
             "person" if train_set.layout == "mask contest" else "image",
             len(eval_set.image_ids) if eval_set else "no")
    return Loaders(train=train, val=val, eval=evaluation,
                   val_ids=[train_set.paths[i] for i in val_idx], val_labels=labels[val_idx],
                   eval_ids=eval_set.image_ids if eval_set else [])
