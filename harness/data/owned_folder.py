"""A folder a generator writes into without owning it: the files it wrote are listed, with their SHA-1, in a
manifest inside the folder, and writing the folder again replaces those files only. A file the user added, or one
of its files the user changed since, is never deleted or overwritten: if the new output needs its place, nothing
is changed and one line names it. The new files are made in a staging folder inside it first, so a refusal or a
failure midway also leaves the folder as it was."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from harness.atomic import make_folder, write_json
from harness.errors import UserError

STAGING = ".staging.partial"  # inside the folder: the same file system, so each file is renamed into place


def digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


def checked_out(out: Path) -> None:
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link: give a folder of its own (the files would be written "
                        f"where it leads); nothing was changed")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: expected a new or empty folder; nothing was changed")


def previous_files(out: Path, manifest: str, tool: str) -> dict[str, str]:
    """The files (relative path -> SHA-1) the tool wrote into `out` before; {} for a new or empty folder. A folder
    without the manifest, or with one that lists no files (an older version's), is refused."""
    checked_out(out)
    if not out.exists() or not [p for p in out.iterdir() if p.name != STAGING]:
        return {}
    marker = out / manifest
    if not marker.is_file():
        raise UserError(f"{out} is not empty and is not a folder {tool} wrote (no {manifest} in it): give --out a "
                        f"new or empty folder; nothing was changed")
    try:
        files = json.loads(marker.read_text()).get("files")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise UserError(f"{marker} does not list the files {tool} wrote (an older version wrote it): nothing was "
                        f"changed; remove {out} yourself, or give --out a new folder")
    return files


def is_ours(path: Path, recorded: str | None) -> bool:
    """Whether `path` is a regular file with the content the tool recorded for it."""
    return recorded is not None and path.is_file() and not path.is_symlink() and digest(path) == recorded


def in_the_way(out: Path, new: dict[str, str], previous: dict[str, str]) -> Path | None:
    """The first path the new files need that holds something not ours (a file the user added or changed, a file
    where a folder must be, a link)."""
    for relative in new:
        target = out / relative
        for parent in reversed(target.relative_to(out).parents[:-1]):
            folder = out / parent
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                return folder
        if os.path.lexists(target) and not is_ours(target, previous.get(relative)):
            return target
    return None


def remove_previous(out: Path, previous: dict[str, str]) -> None:
    """The tool's earlier files that are unchanged, then the folders that removing them left empty."""
    emptied = set()
    for relative, recorded in previous.items():
        path = out / relative
        if is_ours(path, recorded):
            path.unlink()
            emptied |= {out / parent for parent in Path(relative).parents[:-1]}
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it holds something else, which stays
            folder.rmdir()


def install(staging: Path, out: Path, previous: dict[str, str], manifest: str, tool: str) -> None:
    new = {path.relative_to(staging).as_posix(): digest(path)
           for path in sorted(staging.rglob("*")) if path.is_file()}
    blocker = in_the_way(out, new, previous)
    if blocker is not None:
        raise UserError(f"{blocker} is in the way: {tool} did not write it (or it was changed since), so it is not "
                        f"replaced; nothing was changed (move it, or give --out a new folder)")
    remove_previous(out, previous)
    for relative in new:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, out / relative)
    write_json({"written_by": tool, "note": "writing this folder again replaces these files only (if unchanged)",
                "files": new}, out / manifest)


@contextlib.contextmanager
def rewritten(out: Path, manifest: str, tool: str) -> Iterator[Path]:
    """A staging folder to write the new files into; when the block ends they replace the tool's earlier files in
    `out`. On a refusal or a failure nothing in `out` changes (a folder made for it is removed again)."""
    previous = previous_files(out, manifest, tool)
    made = not out.exists()
    staging = make_folder(out) / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's: the name is this module's own
    staging.mkdir()
    try:
        yield staging
        install(staging, out, previous, manifest, tool)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made and not any(out.iterdir()):
            out.rmdir()
