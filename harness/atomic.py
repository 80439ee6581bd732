"""Files are written whole or not at all: write a temporary file beside the target, then rename it over."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
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


def _create(tmp: Path) -> None:
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 & ~umask: the usual mode


def _flush(tmp: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(temporaries: list[Path]) -> int:
    """Removes the temporary files; returns how many bytes they held."""
    written = 0
    for tmp in temporaries:
        with contextlib.suppress(FileNotFoundError):
            written += os.path.getsize(tmp)
            os.unlink(tmp)
    return written


def _full(error: BaseException, folder: Path, names: str, written: int) -> DiskFull | None:
    """The DiskFull an out-of-space error becomes (None for any other error)."""
    if not (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
        return None
    free = shutil.disk_usage(folder).free
    return DiskFull(f"{folder} is full: writing {names} needed more than {written / 1e6:.1f} MB "
                    f"({free / 1e6:.1f} MB free); nothing was written")


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
        _create(tmp)
        yield tmp
        _flush(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        if isinstance(error, FileExistsError) and error.filename == str(tmp):
            raise  # another writer took the name in between: the file is not this one's to remove
        full = _full(error, path.parent, path.name, _discard([tmp]))
        if full is not None:
            raise full from None
        raise


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """atomic_path for several files that belong together (the ensemble's submission and soft CSVs): a temporary
    path beside each; when the block ends all are flushed, then all renamed into place. A failure (a full disk)
    leaves none of them, so "nothing was written" stays true."""
    targets = [Path(p) for p in paths]
    temporaries: list[Path] = []
    try:
        for path in targets:
            make_folder(path.parent)
            temporaries.append(_unused_temporary(path))
            _create(temporaries[-1])
        yield list(temporaries)
        for tmp in temporaries:
            _flush(tmp)
    except BaseException as error:
        written = _discard(temporaries)
        full = _full(error, targets[0].parent, ", ".join(p.name for p in targets), written)
        if full is not None:
            raise full from None
        raise
    for tmp, path in zip(temporaries, targets):
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """open() for a file that appears whole or not at all (see atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def csv_to(frame: pd.DataFrame, handle: IO, significant_digits: int | None = 7) -> None:
    """Float columns are written with `significant_digits` (probabilities do not need 17)."""
    float_format = None if significant_digits is None else f"%.{significant_digits}g"
    frame.to_csv(handle, index=False, float_format=float_format)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike, significant_digits: int | None = 7) -> None:
    with atomic_open(path, "w", newline="") as handle:
        csv_to(frame, handle, significant_digits)


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
