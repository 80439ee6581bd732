"""Files are written whole or not at all: write a temporary file beside the target, then rename it over."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.errors import DiskFull, UserError

if TYPE_CHECKING:
    import pandas as pd


def make_folder(folder: str | os.PathLike) -> Path:
    """mkdir -p, with one clear line when a file stands where a folder should be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise UserError(f"{blocker} cannot be a folder: a file of that name is in the way") from None
    except OSError as error:
        raise UserError(f"{folder} cannot be created ({error.strerror})") from None
    return folder


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The hidden temporary files (.<name>.<random>.tmp) that a killed writer left in a folder only this process
    writes into (a trial's run folder): removed, so that nothing half-written stays behind."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


def _unused_temporary(path: Path) -> Path:
    """A hidden name beside `path` that no file has now (.<name>.<random>.tmp)."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        if not os.path.lexists(candidate):
            return candidate


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to: when the block ends it is flushed to disk and renamed over
    `path`; if the block fails it is removed. Its name starts with '.' (and ends in .tmp) so that no glob over the
    folder picks up a half-written file."""
    path = Path(path)
    make_folder(path.parent)
    tmp = _unused_temporary(path)
    # The file is created inside the try, so that a stop signal landing right after its creation (the handler
    # raises Stopped at the next bytecode) still removes it; tempfile.mkstemp would create it before the try.
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 & ~umask: the usual mode
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as error:
        if isinstance(error, FileExistsError) and error.filename == str(tmp):
            raise  # another writer took the name in between: the file is not this one's to remove
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise DiskFull(f"{path.parent} is full: writing {path.name} needed more than {written / 1e6:.1f} MB "
                            f"({free / 1e6:.1f} MB free); nothing was written") from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """open() for a file that appears whole or not at all (see atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, significant_digits: int | None = 7) -> None:
    """Float columns are written with `significant_digits` (probabilities do not need 17)."""
    float_format = None if significant_digits is None else f"%.{significant_digits}g"
    with atomic_open(path, "w", newline="") as handle:
        frame.to_csv(handle, index=False, float_format=float_format)


def write_json(data: Any, path: str | os.PathLike) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def write_jsonl(records: list[dict], path: str | os.PathLike) -> None:
    """Rewrite the whole file: a reader never sees a torn last line, and the file is short (one line an epoch)."""
    with atomic_open(path, "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)
