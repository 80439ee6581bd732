"""Where a data set's prepared images come from: decoded from disk on every access, or from the shared cache."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from harness.transforms import load_prepared


class DecodedImages:
    """Reads, decodes, crops and resizes image i on every access (the path without the cache)."""

    def __init__(self, root: Path, paths: Sequence[str], img_size: int, crop: float) -> None:
        self.root, self.paths, self.img_size, self.crop = Path(root), list(paths), img_size, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return load_prepared(self.root / self.paths[index], self.img_size, self.crop)


class ImageSet(Dataset):
    """(uint8 HWC image tensor, label) pairs: prepared images, then the augmentation when training.

    `images` is anything indexable that returns prepared uint8 images: DecodedImages, or a memory-mapped cache
    array. Labels are -1 for the eval set."""

    def __init__(self, images, indices: np.ndarray, labels: np.ndarray | None,
                 augment: Callable | None = None) -> None:
        self.images, self.indices, self.augment = images, np.asarray(indices), augment
        self.labels = None if labels is None else np.asarray(labels)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        image = self.images[int(self.indices[position])]
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        label = -1 if self.labels is None else int(self.labels[position])
        # A cached image is a read-only view of the memory map: copied here (and only here) for torch.
        return torch.from_numpy(np.require(image, requirements=["C", "W"])), label


def seed_worker(worker_id: int) -> None:
    """Each worker draws different augmentations, reproducibly: torch seeds workers from the loader's generator;
    albumentations and OpenCV take theirs from it here."""
    import cv2

    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own threads would oversubscribe the cores
    info = torch.utils.data.get_worker_info()
    augment = getattr(info.dataset, "augment", None)
    if augment is not None and hasattr(augment, "set_random_seed"):
        augment.set_random_seed(info.seed % 2**32)


def make_loader(dataset: ImageSet, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                pin_memory: bool) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, pin_memory=pin_memory,
        # A lone last image would break BatchNorm in training; evaluation must see every image.
        drop_last=shuffle and len(dataset) > batch_size,
        persistent_workers=num_workers > 0, worker_init_fn=seed_worker, generator=generator,
        prefetch_factor=4 if num_workers > 0 else None)
