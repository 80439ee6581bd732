"""The decoded-image cache is correct (same pixels as decoding), notices changed data, and survives races/crashes."""
import multiprocessing
import os
import shutil

import numpy as np
import pytest

from harness.data import image_cache
from harness.data.batches import DecodedImages
from harness.data.image_cache import cached_images
from harness.data.layouts import list_images
from harness.data.opencv import cv2
from harness.data.transforms import load_prepared


@pytest.fixture
def images(demo_dir, tmp_path):
    root = shutil.copytree(demo_dir / "eval" / "images", tmp_path / "images")
    return root, list_images(root)


def test_cached_pixels_equal_freshly_decoded_ones(images, tmp_path):
    root, paths = images
    cache = cached_images(root, paths, 40, 0.8, tmp_path / "cache", num_workers=2)
    assert cache.shape == (len(paths), 40, 40, 3) and cache.dtype == np.uint8
    for index, path in enumerate(paths):
        assert np.array_equal(cache[index], load_prepared(root / path, 40, 0.8))


def test_a_second_call_reuses_the_cache(images, tmp_path, monkeypatch):
    root, paths = images
    cached_images(root, paths, 32, 0.8, tmp_path / "cache")
    monkeypatch.setattr(image_cache, "build", lambda *a, **k: pytest.fail("rebuilt an up-to-date cache"))
    assert cached_images(root, paths, 32, 0.8, tmp_path / "cache").shape[0] == len(paths)


def only_caches(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".npy" or p.name.endswith(".tmp"))


@pytest.mark.parametrize("change", ["modified", "added", "removed"])
def test_a_changed_data_set_rebuilds_the_cache(images, tmp_path, change):
    root, paths = images
    cache_dir = tmp_path / "cache"
    before = cached_images(root, paths, 32, 0.8, cache_dir)
    old_files = only_caches(cache_dir)
    if change == "modified":
        image = cv2.imread(str(root / paths[0]))
        cv2.imwrite(str(root / paths[0]), 255 - image)
        stat = os.stat(root / paths[0])
        os.utime(root / paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    elif change == "added":
        shutil.copy(root / paths[0], root / "zz_new.jpg")
    else:
        (root / paths[-1]).unlink()
    paths = list_images(root)
    after = cached_images(root, paths, 32, 0.8, cache_dir)
    assert only_caches(cache_dir) != old_files and len(only_caches(cache_dir)) == 1  # the stale one is gone
    assert after.shape[0] == len(paths)
    assert np.array_equal(after[0], load_prepared(root / paths[0], 32, 0.8))
    if change == "modified":
        assert not np.array_equal(after[0], before[0])


def build_in_child(root, paths, cache_dir, queue):
    array = cached_images(root, paths, 24, 0.8, cache_dir, num_workers=0)
    queue.put(np.asarray(array).sum(dtype=np.int64))


def test_two_builders_at_once_end_with_one_valid_cache(images, tmp_path, monkeypatch):
    """The second trial waits for the first one's cache instead of decoding everything again."""
    root, paths = images
    cache_dir = tmp_path / "cache"
    builds = tmp_path / "builds.log"
    real_build = image_cache.build

    def counted_build(*args, **kwargs):
        with open(builds, "a") as log:
            log.write(f"{os.getpid()}\n")
        real_build(*args, **kwargs)

    monkeypatch.setattr(image_cache, "build", counted_build)  # inherited by the forked builders
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    builders = [context.Process(target=build_in_child, args=(root, paths, cache_dir, queue)) for _ in range(2)]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(timeout=120)
        assert builder.exitcode == 0
    sums = [queue.get(timeout=5) for _ in builders]
    expected = np.stack([load_prepared(root / p, 24, 0.8) for p in paths]).sum(dtype=np.int64)
    assert sums == [expected, expected]
    assert len(builds.read_text().split()) == 1
    assert len(only_caches(cache_dir)) == 1 and not any(p.endswith(".tmp") for p in only_caches(cache_dir))


def test_a_crash_while_building_leaves_no_cache(images, tmp_path, monkeypatch):
    root, paths = images
    cache_dir = tmp_path / "cache"
    original = DecodedImages.__getitem__

    def fail_midway(self, index):
        if index == len(paths) // 2:
            raise RuntimeError("power cut")
        return original(self, index)

    monkeypatch.setattr(DecodedImages, "__getitem__", fail_midway)
    with pytest.raises(RuntimeError, match="power cut"):
        cached_images(root, paths, 32, 0.8, cache_dir, num_workers=0)
    assert only_caches(cache_dir) == []
    monkeypatch.setattr(DecodedImages, "__getitem__", original)
    assert cached_images(root, paths, 32, 0.8, cache_dir).shape[0] == len(paths)


def test_a_killed_builders_leftover_is_never_read_and_is_cleaned(images, tmp_path):
    root, paths = images
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    target = image_cache.cache_path(cache_dir, root, paths, 32, 0.8)
    leftover = target.with_name(f".{target.name}.99999.tmp")
    leftover.write_bytes(b"half a cache")
    cache = cached_images(root, paths, 32, 0.8, cache_dir)
    assert np.array_equal(cache[1], load_prepared(root / paths[1], 32, 0.8))
    assert not leftover.exists()


def test_no_room_falls_back_to_decoding(images, tmp_path, monkeypatch):
    root, paths = images
    monkeypatch.setattr(image_cache.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 0))
    assert cached_images(root, paths, 32, 0.8, tmp_path / "cache") is None


def test_replaced_content_with_the_same_size_and_mtime_rebuilds(images, tmp_path):
    root, paths = images
    cache_dir = tmp_path / "cache"
    before = cached_images(root, paths, 32, 0.8, cache_dir)
    first, second = root / paths[0], root / paths[1]
    stat = os.stat(first)
    replacement = second.read_bytes()[:stat.st_size].ljust(stat.st_size, b"\0")  # same size, other pixels
    first.write_bytes(replacement)
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    after = cached_images(root, paths, 32, 0.8, cache_dir)
    assert not np.array_equal(after[0], before[0])
    assert np.array_equal(after[0], load_prepared(first, 32, 0.8))


@pytest.mark.parametrize("damage", ["truncated", "emptied"])
def test_a_damaged_cache_file_is_detected_and_rebuilt(images, tmp_path, damage):
    root, paths = images
    cache_dir = tmp_path / "cache"
    cached_images(root, paths, 32, 0.8, cache_dir)
    (target,) = cache_dir.glob("*.npy")
    with open(target, "r+b") as handle:
        handle.truncate(target.stat().st_size // 2 if damage == "truncated" else 0)
    again = cached_images(root, paths, 32, 0.8, cache_dir)
    assert np.array_equal(again[0], load_prepared(root / paths[0], 32, 0.8))


def test_a_disk_that_fills_during_the_build_abandons_the_cache_cleanly(images, tmp_path, monkeypatch, caplog):
    """What posix_fallocate reports when the room the free-space check saw is taken meanwhile."""
    root, paths = images

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert cached_images(root, paths, 32, 0.8, tmp_path / "cache") is None
    assert "filled up while building" in caplog.text
    assert not list((tmp_path / "cache").glob("*.npy")) and not list((tmp_path / "cache").glob(".*.tmp"))


def test_a_trial_killed_while_building_blocks_no_later_trial(tmp_path):
    """SIGKILL the builder while its workers decode: they die with it, the lock is free, and the next build runs."""
    import signal
    import subprocess
    import sys
    import time

    from harness.data.demo import generate

    data = generate(tmp_path / "data", people=6, eval_images=600, width=384, height=512, seed=1)
    root = data / "eval" / "images"
    cache_dir = tmp_path / "cache"
    script = ("import sys; from pathlib import Path; from harness.data.image_cache import cached_images;"
              "from harness.data.layouts import list_images; root = Path(sys.argv[1]);"
              "cached_images(root, list_images(root), 64, 0.8, Path(sys.argv[2]), num_workers=2)")
    builder = subprocess.Popen([sys.executable, "-c", script, str(root), str(cache_dir)],
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.monotonic() + 60
    while not list(cache_dir.glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(cache_dir.glob(".*.tmp")), "the build never started"
    time.sleep(1.0)  # the workers are decoding
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=10)
    (lock,) = cache_dir.glob("*.lock")
    import fcntl

    # No orphaned worker keeps it: they die with their parent, which the kernel tells them a moment later (longer on
    # a loaded machine), so the lock is tried until it is free or 30 s have passed.
    deadline = time.monotonic() + 30
    with open(lock, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "an orphaned worker of the killed build still holds its lock"
                time.sleep(0.1)
        fcntl.flock(handle, fcntl.LOCK_UN)
    cache = cached_images(root, list_images(root), 64, 0.8, cache_dir, num_workers=0)
    assert cache.shape[0] == 600
    assert not list(cache_dir.glob(".*.tmp")), "the killed build's temporary file was left"


def test_a_cache_with_the_right_name_and_shape_but_other_pixels_is_rebuilt(images, tmp_path, caplog):
    """Its pixels' checksum, written with it, is verified once per process: other pixels are found and rebuilt."""
    root, paths = images
    cache_dir = tmp_path / "cache"
    cached_images(root, paths, 32, 0.8, cache_dir)
    (target,) = cache_dir.glob("*.npy")
    stat = target.stat()
    with open(target, "r+b") as handle:  # same size, same header: pixels of the middle image overwritten
        handle.seek(stat.st_size - (len(paths) // 2) * 32 * 32 * 3)
        handle.write(bytes(range(256)) * 12)
    again = cached_images(root, paths, 32, 0.8, cache_dir)
    assert "its pixels differ from the checksum written when it was built): rebuilding it" in caplog.text
    for index in range(len(paths)):
        assert np.array_equal(again[index], load_prepared(root / paths[index], 32, 0.8))



@pytest.mark.parametrize("windows", [1, 3, 1000])
def test_the_checksum_is_the_same_whatever_the_window(tmp_path, windows):
    """The pixels are hashed a window of the file at a time (so the trial's RSS holds one window, not the file):
    a window boundary anywhere inside the pixels gives the digest of the whole array at once."""
    import mmap

    import xxhash
    pixels = np.random.default_rng(0).integers(0, 255, (9, 97, 97, 3), dtype=np.uint8)  # 254 KB: 4 windows of 64 KB
    np.save(tmp_path / "c.npy", pixels)
    window = windows * mmap.ALLOCATIONGRANULARITY
    assert image_cache.pixel_checksum(tmp_path / "c.npy", window) == xxhash.xxh3_64(pixels.tobytes()).hexdigest()
