"""A decoded-image cache shared by trials: each image is decoded, cropped and resized once into a uint8 .npy
array that every later epoch and trial memory-maps.

- Key: the data set's folder, img_size, crop and the preparation code's version name the cache; a fingerprint of
  every file's (path, size, mtime, hash of its first and last 4 KB) completes it, so files added, removed,
  modified or replaced make a new cache (the old one is deleted once the new one exists).
- Concurrency: builders take an exclusive lock (flock) on the key; a trial that starts meanwhile waits on the lock
  and then finds the finished cache. The kernel drops a flock with the last process holding it, so a builder that
  is killed releases it: its decoding workers die with it (batches.die_with_parent), and the waiting trial takes
  the build over. A builder that is stopped (SIGSTOP, Ctrl-Z) or hung keeps the lock: it touches the lock file
  after every batch it decodes, and a waiter that sees no progress for STALL_S seconds stops waiting, says so in
  one line and decodes from disk.
- Crash safety: the array is written to a temporary file and renamed into place, so a crash leaves no cache that
  could be read half-written (a stale temporary file is removed by the next builder). A cache file damaged
  afterwards (truncated, wrong shape, other pixels) is detected when it is opened and rebuilt: its pixels' xxh3
  checksum, written beside it when it was built (<cache>.npy.xxh3), is verified once per process (docs/speed.md
  has the cost).
- A cache folder that cannot be written (read-only) is said in one line, and the trial decodes from disk.
- Full disk: the file's blocks are reserved before decoding starts (posix_fallocate); no room, known up front or
  found then, abandons the cache cleanly and the trial decodes from disk instead.

Why hand-made: no library offers a cross-process, crash-safe, memory-mapped cache of prepared images; measured
here, it makes the loader 5.4x faster than decoding JPEGs (README, Speed)."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import mmap
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import xxhash
from torch.utils.data import DataLoader

from harness.atomic import DiskFull, atomic_path, make_folder, write_text
from harness.data.batches import DecodedImages, die_with_parent
from harness.errors import one_line
from harness.locks import held_by, stalled_since, try_lock, wait_for_lock

log = logging.getLogger(__name__)

# Bump when transforms.prepare changes what it produces: old caches then stop matching.
PREPARE_VERSION = "crop-resize-area-v1"
STALL_S = 120.0  # seconds without a decoded batch after which a waiter gives up on the builder holding the lock
CHECKSUM_SUFFIX = ".xxh3"
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_verified: set[tuple[str, int, int]] = set()  # (path, inode, mtime) of the caches this process has verified


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


def lock_path(target: Path) -> Path:
    return target.with_name(target.name.split("-")[0] + ".lock")


def checksum_path(target: Path) -> Path:
    return target.with_name(target.name + CHECKSUM_SUFFIX)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[bool]:
    """Holds the lock for the block (True), or gives up (False) when its holder made no progress, touching `path`,
    for STALL_S seconds: a stopped or hung builder."""
    with open(path, "a") as handle:
        if not try_lock(handle):
            log.info("waiting for another trial to finish building the image cache (%s)", path)
            if not wait_for_lock(handle, stalled_since(path, STALL_S)):
                log.warning("the image cache's builder%s has made no progress for %.0f s (stopped or hung; %s "
                            "unchanged): decoding from disk instead", held_by(path), STALL_S, path)
                yield False
                return
        os.utime(path)  # the heartbeat starts: a waiter measures the builder's progress from now
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stack(batch: list[np.ndarray]) -> np.ndarray:
    return np.stack(batch)


def build(target: Path, root: Path, paths: Sequence[str], img_size: int, crop: float, num_workers: int,
          heartbeat: Callable[[], None] = lambda: None) -> None:
    """Decode every image into `target` (written under a temporary name, renamed when complete), with the xxh3
    checksum of its pixels beside it; heartbeat() after every batch."""
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
        start, checksum = 0, xxhash.xxh3_64()
        for batch in loader:
            array[start:start + len(batch)] = batch
            checksum.update(batch)
            start += len(batch)
            heartbeat()
        array.flush()
        del array
        write_text(checksum.hexdigest() + "\n", checksum_path(target))  # before the cache appears under its name


def pixel_checksum(path: Path, window: int = 64 << 20) -> str:
    """xxh3 of a .npy file's array bytes (what build's checksum covers), hashed straight from memory maps of
    `window` bytes at a time: 7 GB/s from the page cache here, against 3 GB/s through read(), with at most a window
    of the file resident in this process at once (one map of the whole file put every page of it in the trial's RSS
    at start-up: 4.7 GB for the mask contest's caches at 224 px, more than the trial's peak while training)."""
    granularity = mmap.ALLOCATIONGRANULARITY  # where a map may start
    window = max(window - window % granularity, granularity)
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"npy format version {version}")
        read_header[version](handle)
        offset, size = handle.tell(), os.fstat(handle.fileno()).st_size
        digest = xxhash.xxh3_64()
        for start in range(0, size, window):
            with mmap.mmap(handle.fileno(), min(window, size - start), access=mmap.ACCESS_READ,
                           offset=start) as mapped, memoryview(mapped) as view:
                with view[max(offset - start, 0):] as pixels:
                    digest.update(pixels)
        return digest.hexdigest()


def verify(target: Path) -> None:
    """Raises ValueError when the cache's pixels are not those it was built with; once per process and file."""
    stat = target.stat()
    key = (str(target), stat.st_ino, stat.st_mtime_ns)
    if key in _verified:
        return
    try:
        expected = checksum_path(target).read_text().strip()
    except FileNotFoundError:
        raise ValueError(f"no {CHECKSUM_SUFFIX} checksum beside it") from None
    if pixel_checksum(target) != expected:
        raise ValueError("its pixels differ from the checksum written when it was built")
    _verified.add(key)


def _remove_stale(target: Path) -> None:
    """Older caches of the same key (the data set changed since), their checksums, and temporary files left by a
    crash."""
    key = target.name.split("-")[0]
    for old in [*target.parent.glob(f"{key}-*.npy"), *target.parent.glob(f"{key}-*.npy{CHECKSUM_SUFFIX}")]:
        if old not in (target, checksum_path(target)):
            old.unlink(missing_ok=True)
    for leftover in target.parent.glob(f".{key}-*.tmp"):
        leftover.unlink(missing_ok=True)


def build_if_missing(target: Path, root: Path, paths: Sequence[str], img_size: int, crop: float,
                     num_workers: int) -> bool:
    """Builds the cache unless another trial has meanwhile; False when the trial must do without it (no room, a
    builder that made no progress)."""
    lock = lock_path(target)
    with exclusive_lock(lock) as held:
        if not held:
            return False
        if target.exists():  # another trial built it while this one waited
            return True
        _remove_stale(target)
        needed = len(paths) * img_size * img_size * 3
        if shutil.disk_usage(target.parent).free < needed * 1.1:
            log.warning("no room for a %.1f GB image cache in %s: decoding from disk every epoch", needed / 1e9,
                        target.parent)
            return False
        log.info("building the image cache %s (%d images, %.2f GB)", target, len(paths), needed / 1e9)
        try:
            build(target, root, paths, img_size, crop, num_workers, heartbeat=lambda: os.utime(lock))
        except DiskFull:
            log.warning("%s filled up while building a %.1f GB image cache: the cache is abandoned and images are "
                        "decoded from disk every epoch", target.parent, needed / 1e9)
            return False
    return True


def cached_images(root: Path, paths: Sequence[str], img_size: int, crop: float, cache_dir: Path | None = None,
                  num_workers: int = 2, retry_damaged: bool = True) -> np.ndarray | None:
    """A read-only memory map [N, img_size, img_size, 3] of the prepared images, building it if needed;
    None when the trial must decode from disk instead (no room, a read-only cache folder, a stalled builder)."""
    cache_dir = make_folder(cache_dir or default_cache_dir())
    target = cache_path(cache_dir, root, paths, img_size, crop)
    if not target.exists():
        try:
            if not build_if_missing(target, root, paths, img_size, crop, num_workers):
                return None
        except OSError as error:
            if error.errno not in UNWRITABLE:
                raise
            log.warning("the image cache folder %s cannot be written (%s): decoding from disk every epoch",
                        cache_dir, error.strerror)
            return None
    try:
        # A plain ndarray view of the map: indexing a np.memmap builds a memmap object per image.
        images = np.asarray(np.load(target, mmap_mode="r"))
        if images.shape != (len(paths), img_size, img_size, 3) or images.dtype != np.uint8:
            raise ValueError(f"shape {images.shape}, dtype {images.dtype}")
        verify(target)
        return images
    except (ValueError, OSError, EOFError) as error:  # truncated, overwritten by something else, other pixels
        if not retry_damaged or not _discard(target):
            log.warning("the image cache %s is damaged (%s) and cannot be rebuilt: decoding from disk every epoch",
                        target, one_line(error))
            return None
        log.warning("the image cache %s is damaged (%s): rebuilding it", target, one_line(error))
        return cached_images(root, paths, img_size, crop, cache_dir, num_workers, retry_damaged=False)


def _discard(target: Path) -> bool:
    """Removes a damaged cache; False when its folder cannot be written."""
    try:
        target.unlink(missing_ok=True)
    except OSError as error:
        if error.errno not in UNWRITABLE:
            raise
        return False
    return True
