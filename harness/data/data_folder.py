"""The data folder as the boundary of every image path a data set names: paths from CSVs (train.csv's profile
folders and path column, eval/info.csv's ImageIDs) and from folder scans stay inside it, links included, and
name regular files only.

A path that climbs out of its folder ('../../outside/person', '/etc/passwd') is always refused. A symbolic link
that leaves the data folder is refused unless the user allows it (--allow_outside_links true: images kept on
another disk and linked in). A FIFO, socket or device named like an image is refused before anything opens it (an
open FIFO blocks the reader forever), and so is a folder named like one where a file belongs."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import UserError


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for a message."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


class DataFolder:
    """Checks the paths of one data set against its folder (resolved once; folders' real paths are cached, so a
    check costs one lstat and one stat per image)."""

    def __init__(self, data_dir: str | os.PathLike, allow_outside_links: bool = False) -> None:
        self.root = Path(data_dir).resolve()
        self.allow_outside_links = allow_outside_links
        self._real_folders: dict[str, str] = {}

    def relative(self, text: str, base: Path, where: str) -> str:
        """`text`, a path a CSV gives under `base`, once it is known not to be empty, absolute or climbing out."""
        normal = os.path.normpath(text) if text.strip() else ""
        if not normal or os.path.isabs(text) or normal in (".", "..") or normal.startswith(f"..{os.sep}"):
            problem = "is empty" if not normal else f"leads outside {base}"
            raise UserError(f"{where}: path {text!r} {problem}: expected a path under {base}")
        return text

    def real(self, path: str | os.PathLike) -> str:
        """`path` with every symbolic link in it resolved."""
        parent, name = os.path.split(os.path.abspath(path))
        real_parent = self._real_folders.get(parent)
        if real_parent is None:
            real_parent = self._real_folders[parent] = os.path.realpath(parent)
        joined = os.path.join(real_parent, name)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    def inside(self, path: str | os.PathLike, where: str) -> None:
        """Refuses `path` when links take it outside the data folder (unless allowed)."""
        if self.allow_outside_links:
            return
        real = self.real(path)
        if not Path(real).is_relative_to(self.root):
            raise UserError(f"{where}: {path} leads to {real}, outside the data folder {self.root} (a symbolic "
                            f"link): pass --allow_outside_links true to read images linked from elsewhere")

    def image(self, path: str | os.PathLike, where: str) -> bool:
        """Whether an image file is at `path`: False when nothing is (a missing file, a broken link); a UserError
        naming `where` when something other than a regular file is there, or a link leads outside."""
        try:
            mode = os.stat(path).st_mode  # stat never opens: a FIFO does not block it
        except FileNotFoundError:
            return False
        except OSError as error:
            raise UserError(f"{where}: {path} cannot be read ({error.strerror})") from None
        if not stat.S_ISREG(mode):
            raise UserError(f"{where}: {path} is {file_kind(mode)}, not an image file")
        self.inside(path, where)
        return True

    def folder(self, path: str | os.PathLike, where: str) -> bool:
        """Whether a folder is at `path` (links followed, and refused when they lead outside)."""
        if not os.path.isdir(path):
            return False
        self.inside(path, where)
        return True
