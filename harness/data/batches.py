"""Where a data set's prepared images come from: decoded from disk on every access, or from the shared cache."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from harness.data.transforms import load_prepared


class DecodedImages:
    """Reads, decodes, crops and resizes image i on every access (the path without the cache)."""

    def __init__(self, root: Path, paths: Sequence[str], img_size: int, crop: float) -> None:
        self.root, self.paths, self.img_size, self.crop = Path(root), list(paths), img_size, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return load_prepared(self.root / self.paths[index], self.img_size, self.crop)


PREFETCH = 4  # batches each loader worker prepares ahead
# Shared batch buffers per worker: a batch is rewritten only after PREFETCH + 2 more, so the consumer may keep the
# current and the previous batch (copy anything kept longer; the training and prediction loops keep neither).
RING_SLOTS = PREFETCH + 2


class ImageSet(Dataset):
    """(uint8 HWC image tensor, labels) pairs: prepared images, then the augmentation when training.

    `images` is anything indexable that returns prepared uint8 images: DecodedImages, or a memory-mapped cache
    array. `labels` holds one column per head of the model ([N, heads]; a vector is one head); the eval set has
    none and gets -1. with_index: each label row ends with the image's index into `images` (soft targets)."""

    def __init__(self, images, indices: np.ndarray, labels: np.ndarray | None,
                 augment: Callable | None = None, with_index: bool = False) -> None:
        self.images, self.indices, self.augment = images, np.asarray(indices), augment
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            labels = (labels[:, None] if labels.ndim == 1 else labels)[self.indices]
            if with_index:  # soft targets look their rows up by the image's index: its last label column
                labels = np.concatenate([labels, self.indices[:, None].astype(np.int64)], axis=1)
        self.labels = labels
        self.ring: list[torch.Tensor] = []  # a worker's shared batch buffers, made at its first batch
        self.turn = 0

    def __len__(self) -> int:
        return len(self.indices)

    def image(self, position: int) -> np.ndarray:
        image = self.images[int(self.indices[position])]
        return image if self.augment is None else self.augment(image=image)["image"]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = torch.full((1,), -1) if self.labels is None else torch.from_numpy(self.labels[position])
        # A cached image is a read-only view of the memory map: copied here (and only here) for torch.
        return torch.from_numpy(np.require(self.image(position), requirements=["C", "W"])), label

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once (DataLoader calls this when it exists): each image is written straight into the
        batch tensor, in a worker a slot of its shared-memory ring, so there is no per-image tensor, no stacking
        copy in collate and no copy into shared memory on the way to the main process."""
        first = self.image(positions[0])
        batch = self.batch_buffer(len(positions), first.shape)
        pixels = batch.numpy()
        pixels[0] = first
        for slot, position in enumerate(positions[1:], start=1):
            pixels[slot] = self.image(position)
        labels = np.full((len(positions), 1), -1) if self.labels is None else self.labels[positions]
        return batch, torch.as_tensor(labels, dtype=torch.int64)

    def batch_buffer(self, size: int, shape: tuple) -> torch.Tensor:
        """In the main process a new tensor; in a worker the next slot of a ring of shared-memory tensors. A new
        shared tensor per batch costs a fifth of a cached worker's time (fresh pages to map and zero), and torch
        sends a tensor that is already shared without copying it."""
        if torch.utils.data.get_worker_info() is None:
            return torch.empty((size, *shape), dtype=torch.uint8)
        if not self.ring or self.ring[0].shape[0] < size or self.ring[0].shape[1:] != shape:
            self.ring = [torch.empty((size, *shape), dtype=torch.uint8).share_memory_() for _ in range(RING_SLOTS)]
        self.turn += 1
        return self.ring[self.turn % RING_SLOTS][:size]


class JoinedImages:
    """Two image sources as one (the training images, then eval images added to training as pseudo-labels)."""

    def __init__(self, first, second) -> None:
        self.first, self.second, self.split = first, second, len(first)

    def __len__(self) -> int:
        return self.split + len(self.second)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.first[index] if index < self.split else self.second[index - self.split]


def whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The collate step of ImageSet.__getitems__'s batches: nothing left to do."""
    return batch


PR_SET_PDEATHSIG = 1


def die_with_parent(worker_id: int = 0) -> None:
    """A loader worker is killed (SIGKILL) the moment its parent dies, however the parent dies. torch's own check
    runs only between batches, and a worker forked while the trial held a lock (the image cache's) keeps that lock
    for as long as it lives: an orphan would block every later trial. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def seed_worker(worker_id: int, nice: int = 0) -> None:
    """Each worker draws different augmentations, reproducibly: torch seeds workers from the loader's generator,
    albumentations takes its seed from it here. Workers also die with the trial (die_with_parent), and with `nice`
    yield the cores to the trial's own threads (--loader_nice)."""
    die_with_parent(worker_id)
    if nice > 0:
        os.nice(nice)
    info = torch.utils.data.get_worker_info()
    augment = getattr(info.dataset, "augment", None)
    if augment is not None and hasattr(augment, "set_random_seed"):
        augment.set_random_seed(info.seed % 2**32)


class StartableLoader(DataLoader):
    """A DataLoader whose (persistent) workers can start before its first epoch: they prepare the first batches
    while the trial still builds its model, and the first epoch takes them as if it had started the workers itself
    (the same draws from the loader's generator: start it only where nothing sets that generator before the first
    epoch, i.e. not in a resumed split)."""

    _started_early = False

    def start(self) -> None:
        if self.num_workers > 0 and self._iterator is None:
            # DataLoader.__iter__ makes this iterator on a persistent loader's first epoch, and resets it on later
            # ones (a reset draws a new order): made here, the first epoch must take it as it is.
            self._iterator = self._get_iterator()
            self._started_early = True

    def __iter__(self) -> Any:
        if self._started_early:
            self._started_early = False
            return self._iterator
        return super().__iter__()


def make_loader(dataset: ImageSet, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                pin_memory: bool, sample_weights: np.ndarray | None = None, nice: int = 0) -> StartableLoader:
    """sample_weights (training only): draw len(dataset) images per epoch with replacement, each with chance
    proportional to its weight, instead of a shuffle."""
    generator = torch.Generator().manual_seed(seed)
    # The sampler draws from the loader's own generator, as the shuffle does: the checkpoint saves that one
    # generator's state, so a resumed run draws the same images as an uninterrupted one.
    sampler = None if sample_weights is None else WeightedRandomSampler(
        torch.as_tensor(sample_weights, dtype=torch.double), num_samples=len(dataset), replacement=True,
        generator=generator)
    return StartableLoader(
        dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
        num_workers=num_workers, pin_memory=pin_memory,
        # A lone last image would break BatchNorm in training; evaluation must see every image.
        drop_last=shuffle and len(dataset) > batch_size,
        persistent_workers=num_workers > 0, worker_init_fn=partial(seed_worker, nice=nice), generator=generator,
        collate_fn=whole_batch, prefetch_factor=PREFETCH if num_workers > 0 else None)
