"""Advisory locks (flock) with bounded waits: the run folder's one writer (harness/outputs/run_folder.py) and the
image cache's one builder (harness/data/image_cache.py).

The kernel drops a flock with the last process holding its open file, so a killed holder never blocks anyone; a
stopped (SIGSTOP) or hung one does, which is why no wait here is without end."""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

POLL_S = 0.25  # seconds between two tries of a held lock


def try_lock(handle: IO | int) -> bool:
    """An exclusive flock on `handle` (a file object or descriptor) if it is free now."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def wait_for_lock(handle: IO | int, give_up: Callable[[], bool]) -> bool:
    """Tries the lock until it is free (True) or `give_up()` says to stop waiting (False)."""
    while not try_lock(handle):
        if give_up():
            return False
        time.sleep(POLL_S)
    return True


def holder(path: str | os.PathLike) -> int | None:
    """The process id holding a flock on `path`, read from /proc/locks (Linux); None when unknown."""
    try:
        stat = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in lines:
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; "1: -> FLOCK ...": a waiter
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
            return int(fields[4])
    return None


def held_by(path: str | os.PathLike) -> str:
    """' (process N)' when the holder of the lock on `path` is known, else ''."""
    pid = holder(path)
    return f" (process {pid})" if pid else ""


def stalled_since(path: str | os.PathLike, seconds: float) -> Callable[[], bool]:
    """give_up for wait_for_lock: True once `path` (a heartbeat file the holder touches as it works) has not changed
    for `seconds`; a missing file counts as changed now."""
    def stalled() -> bool:
        try:
            changed = os.stat(path).st_mtime
        except OSError:
            return False
        return time.time() - changed > seconds
    return stalled


def after(seconds: float) -> Callable[[], bool]:
    """give_up for wait_for_lock: True once `seconds` have passed from now."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline
