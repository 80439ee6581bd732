"""The one exception type a user can cause: it ends the program with a single clear line, no traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """A mistake the user can fix (bad parameter, missing or corrupt file): the message names the thing and what
    was expected, and is printed alone."""


def one_line(error: Exception) -> str:
    """The message, also when a DataLoader worker raised it: torch re-raises it in the main process wrapped in a
    report whose last line is the original 'harness.errors.UserError: <message>'."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(error).__name__
    return lines[-1].split(f"{type(error).__name__}: ", 1)[-1]


def exit_with(error: Exception, prog: str) -> NoReturn:
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    raise SystemExit(2)


def run_cli(main: Callable[[], int | None], prog: str,
            also: tuple[type[Exception], ...] = ()) -> NoReturn:
    """Run a command-line entry point; a UserError (or one of `also`, the user-facing errors of packages that do
    not import harness, such as models.ModelError) becomes one line on stderr and exit status 2."""
    try:
        code = main()
    except (UserError, *also) as error:
        exit_with(error, prog)
    except KeyboardInterrupt:  # Ctrl-C: the user knows why; a traceback would only hide the line that matters
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code or 0)
