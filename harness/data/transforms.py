"""Image preparation in three stages, so that the costly part can be done once and cached:

1. prepare (deterministic): decode, central crop, resize to img_size x img_size -> uint8 HWC. Cacheable.
2. augment (random, training only): albumentations flip, colour jitter, small rotation on the small uint8 image.
3. normalise (whole batches, on the GPU when there is one): uint8 [B, H, W, C] -> float [B, C, H, W]."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.data.headers import image_size
from harness.errors import UserError, one_line

if TYPE_CHECKING:
    import albumentations as A

log = logging.getLogger(__name__)
# Decoded pixels an image may have: 64 Mpx (8192 x 8192, 192 MB decoded). A larger one, a decompression bomb or an
# uncut panorama, is refused by its header before decoding: a 1 MB PNG can hold 20000 x 20000 pixels (1.2 GB).
MAX_PIXELS = 2**26


def is_truncated_jpeg(head: bytes, tail: bytes) -> bool:
    """A JPEG (head starts with its SOI marker) whose end-of-image marker is missing from the file's last bytes:
    libjpeg decodes what is there and fills the rest with grey, warning on stderr without naming the file."""
    return head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail


def file_edges(path: str | os.PathLike, size: int = 64) -> tuple[bytes, bytes]:
    with open(path, "rb") as handle:
        head = handle.read(2)
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return head, handle.read(size)


def opencv() -> Any:
    """OpenCV, imported where images are decoded: in the loader workers, not in a trial's own process when it has
    workers (16 MB there)."""
    from harness.data.opencv import cv2

    return cv2


def decode(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 HxWx3 (grey and RGBA images become RGB). A truncated JPEG still decodes (as OpenCV does), and a
    warning names it. An image of more than MAX_PIXELS is refused by its header, before decoding."""
    size = image_size(path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise UserError(f"{path} is {size[0]}x{size[1]} pixels: more than the {MAX_PIXELS / 2**20:.0f} Mpx an image "
                        f"may have (a decompression bomb, or a photo to shrink before training)")
    cv2 = opencv()
    try:
        image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    except cv2.error as error:  # OpenCV's own limits (CV_IO_MAX_IMAGE_PIXELS) raise instead of returning None
        raise UserError(f"{path} cannot be decoded as an image ({one_line(error)})") from None
    if image is None:
        raise UserError(f"{path} cannot be decoded as an image")
    if is_truncated_jpeg(*file_edges(path)):
        log.warning("%s is a truncated JPEG: its missing part is decoded as grey (replace the file to train on the "
                    "whole photo)", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def center_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """The central fraction of each side (faces sit in the middle of the contest's portraits)."""
    if fraction >= 1:
        return image
    height, width = image.shape[:2]
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[top:top + crop_h, left:left + crop_w]


def prepare(image: np.ndarray, img_size: int, crop: float) -> np.ndarray:
    cropped = center_crop(image, crop)
    # INTER_AREA averages the pixels a shrink drops (a 384x512 photo becomes 224 px) instead of aliasing them.
    cv2 = opencv()
    resized = cv2.resize(cropped, (img_size, img_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)


def load_prepared(path: str | os.PathLike, img_size: int, crop: float) -> np.ndarray:
    return prepare(decode(path), img_size, crop)


def train_augment(seed: int | None = None) -> A.Compose:
    """Flip, colour jitter, small rotation. No hue shift: it would cost a colour-space round trip per image (about
    half of the jitter's time) for colours that carry no label here."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network at import
    import albumentations as A

    cv2 = opencv()
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=0.8),
        A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
    ], seed=seed)


class TrainAugment:
    """train_augment(seed), built in the process that first uses it. With loader workers that is each worker, never
    the trial's own process: importing albumentations (with pydantic and scipy) is a third of a second and 50 MB of
    a trial's start on 2 cores, and in the workers it runs while the trial builds its model. A worker builds the
    same pipeline the trial would have built and handed it, then seeds it (batches.seed_worker), so the
    augmentations are the same."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.pipeline: Any = None

    def built(self) -> A.Compose:
        if self.pipeline is None:
            self.pipeline = train_augment(self.seed)
        return self.pipeline

    def __call__(self, **data: Any) -> dict[str, Any]:
        return self.built()(**data)

    def set_random_seed(self, seed: int) -> None:
        self.built().set_random_seed(seed)

    def forget(self) -> None:
        """Back to unbuilt: the next use builds it afresh from the seed."""
        self.pipeline = None


class Normalizer:
    """uint8 [B, H, W, C] batch -> normalised float [B, C, H, W] on `device`, in one fused multiply-add.

    The reordering happens on the uint8 batch (a quarter of the bytes of a float copy); for channels_last nothing
    moves at all, since NHWC memory seen as [B, C, H, W] is channels_last already (what convolutions want under
    mixed precision)."""

    def __init__(self, mean: tuple, std: tuple, device: torch.device, channels_last: bool = False) -> None:
        scale = 1 / (torch.tensor(std, dtype=torch.float32) * 255)
        self.scale = scale.view(1, 3, 1, 1).to(device)
        self.bias = (-torch.tensor(mean, dtype=torch.float32) * 255 * scale).view(1, 3, 1, 1).to(device)
        self.device = device
        self.channels_last = channels_last

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if not self.channels_last:
            batch = batch.contiguous()
        return torch.addcmul(self.bias, batch.float(), self.scale)
