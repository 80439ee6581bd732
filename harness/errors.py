"""The one exception type a user can cause: it ends the program with a single clear line, no traceback."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """A mistake the user can fix (bad parameter, missing or corrupt file): the message names the thing and what
    was expected, and is printed alone."""


def exit_with(error: UserError, prog: str) -> NoReturn:
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(2)


def run_cli(main: Callable[[], int | None], prog: str) -> NoReturn:
    """Run a command-line entry point; a UserError becomes one line on stderr and exit status 2."""
    try:
        code = main()
    except UserError as error:
        exit_with(error, prog)
    raise SystemExit(code or 0)
