"""A decoded-image cache shared by trials: each image is decoded, cropped and resized once into a uint8 .npy
array that every later epoch and trial memory-maps.

- Key: the data set's folder, img_size, crop and the preparation code's version name the cache; a fingerprint of
  every file's (path, size, mtime, hash of its first and last 4 KB) completes it, so files added, removed,
  modified or replaced make a new cache (the old one is deleted once the new one exists).
- Concurrency: builders take an exclusive lock (flock) on the key; a trial that starts meanwhile waits on the lock
  and then finds the finished cache. The kernel drops a flock with the last process holding it, so a builder that
  is killed releases it: its decoding workers die with it (batches.die_with_parent), and the waiting trial takes
  the build over.
- Crash safety: the array is written to a temporary file and renamed into place, so a crash leaves no cache that
  could be read half-written (a stale temporary file is removed by the next builder). A cache file damaged
  afterwards (truncated, wrong shape) is detected when it is opened and rebuilt.
- Full disk: the file's blocks are reserved before decoding starts (posix_fallocate); no room, known up front or
  found then, abandons the cache cleanly and the trial decodes from disk instead.

Why hand-made: no library offers a cross-process, crash-safe, memory-mapped cache of prepared images; measured
here, it makes the loader 5.4x faster than decoding JPEGs (README, Speed)."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from harness.atomic import DiskFull, atomic_path, make_folder
from harness.data.batches import DecodedImages, die_with_parent

log = logging.getLogger(__name__)

# Bump when transforms.prepare changes what it produces: old caches then stop matching.
PREPARE_VERSION = "crop-resize-area-v1"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nni-harness"


def _digest(payload: object) -> str:
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(root: Path, img_size: int, crop: float) -> str:
    return _digest([str(Path(root).resolve()), img_size, crop, PREPARE_VERSION])


EDGE_BYTES = 4096  # read from each end of every image for the fingerprint


def edges(path: Path, size: int) -> str:
    """A hash of a file's first and last EDGE_BYTES: an image replaced by another of the same size and mtime
    differs there (JPEG and PNG headers and trailers hold sizes, tables and checksums) at two small reads a file."""
    with open(path, "rb") as handle:
        head = handle.read(EDGE_BYTES)
        if size > 2 * EDGE_BYTES:
            handle.seek(-EDGE_BYTES, os.SEEK_END)
        tail = handle.read(EDGE_BYTES)
    return hashlib.sha1(head + tail).hexdigest()[:12]


def fingerprint(root: Path, paths: Sequence[str]) -> str:
    """Changes when a file is added, removed, reordered, resized, rewritten (mtime) or replaced by other content of
    the same size and mtime (its first and last bytes)."""
    entries = []
    for path in paths:
        full = Path(root) / path
        stat = os.stat(full)
        entries.append((path, stat.st_size, stat.st_mtime_ns, edges(full, stat.st_size)))
    return _digest(entries)


def cache_path(cache_dir: Path, root: Path, paths: Sequence[str], img_size: int, crop: float) -> Path:
    return Path(cache_dir) / f"{cache_key(root, img_size, crop)}-{fingerprint(root, paths)}.npy"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another trial to finish building the image cache (%s)", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stack(batch: list[np.ndarray]) -> np.ndarray:
    return np.stack(batch)


def build(target: Path, root: Path, paths: Sequence[str], img_size: int, crop: float, num_workers: int) -> None:
    """Decode every image into `target` (written under a temporary name, renamed when complete)."""
    with atomic_path(target) as temporary:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8,
                                          shape=(len(paths), img_size, img_size, 3))
        # posix_fallocate reserves the blocks now: a disk that fills up mid-build would otherwise kill the trial
        # with SIGBUS at the first write into an unbacked page of the memory map.
        fd = os.open(temporary, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.path.getsize(temporary))
        finally:
            os.close(fd)
        loader = DataLoader(DecodedImages(root, paths, img_size, crop), batch_size=64,
                            num_workers=num_workers, collate_fn=_stack, worker_init_fn=die_with_parent)
        start = 0
        for batch in loader:
            array[start:start + len(batch)] = batch
            start += len(batch)
        array.flush()
        del array


def _remove_stale(target: Path) -> None:
    """Older caches of the same key (the data set changed since) and temporary files left by a crash."""
    key = target.name.split("-")[0]
    for old in target.parent.glob(f"{key}-*.npy"):
        if old != target:
            old.unlink(missing_ok=True)
    for leftover in target.parent.glob(f".{key}-*.tmp"):
        leftover.unlink(missing_ok=True)


def cached_images(root: Path, paths: Sequence[str], img_size: int, crop: float, cache_dir: Path | None = None,
                  num_workers: int = 2, retry_damaged: bool = True) -> np.ndarray | None:
    """A read-only memory map [N, img_size, img_size, 3] of the prepared images, building it if needed;
    None when the disk has no room for it (the caller decodes from disk instead)."""
    cache_dir = make_folder(cache_dir or default_cache_dir())
    target = cache_path(cache_dir, root, paths, img_size, crop)
    if not target.exists():
        with exclusive_lock(target.with_name(target.name.split("-")[0] + ".lock")):
            if not target.exists():  # another trial may have built it while this one waited
                _remove_stale(target)
                needed = len(paths) * img_size * img_size * 3
                if shutil.disk_usage(cache_dir).free < needed * 1.1:
                    log.warning("no room for a %.1f GB image cache in %s: decoding from disk every epoch",
                                needed / 1e9, cache_dir)
                    return None
                log.info("building the image cache %s (%d images, %.2f GB)", target, len(paths), needed / 1e9)
                try:
                    build(target, root, paths, img_size, crop, num_workers)
                except DiskFull:
                    log.warning("%s filled up while building a %.1f GB image cache: the cache is abandoned and "
                                "images are decoded from disk every epoch", cache_dir, needed / 1e9)
                    return None
    try:
        # A plain ndarray view of the map: indexing a np.memmap builds a memmap object per image.
        images = np.asarray(np.load(target, mmap_mode="r"))
        if images.shape != (len(paths), img_size, img_size, 3) or images.dtype != np.uint8:
            raise ValueError(f"shape {images.shape}, dtype {images.dtype}")
        return images
    except (ValueError, OSError, EOFError) as error:  # truncated or overwritten by something else
        if retry_damaged:
            log.warning("the image cache %s is damaged (%s): rebuilding it", target, error)
            target.unlink(missing_ok=True)
            return cached_images(root, paths, img_size, crop, cache_dir, num_workers, retry_damaged=False)
        raise
