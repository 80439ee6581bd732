"""The one exception type a user can cause, and the one way any error becomes a line: a UserError ends the
program with that line alone, no traceback."""
from __future__ import annotations

MAX_LINE = 400  # characters: a message is a line, not a dump of the input it quotes


class UserError(Exception):
    """A mistake the user can fix (bad parameter, missing or corrupt file): the message names the thing and what
    was expected, and is printed alone."""


class DiskFull(UserError):
    """The disk filled up under an atomic write (nothing of it is left); callers with a fallback catch this."""


def one_line(error: BaseException) -> str:
    """The message of `error` on one line: its type's name when it has none; the original message when a DataLoader
    worker raised it (torch re-raises it in the main process wrapped in a report whose last line is
    '<module>.<Type>: <message>'); anything else with its whitespace folded, at most MAX_LINE characters."""
    text = str(error)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and f"{type(error).__name__}: " in lines[-1] and "worker" in text:
        text = lines[-1].split(f"{type(error).__name__}: ", 1)[-1]
    folded = " ".join(text.split())
    return folded if len(folded) <= MAX_LINE else folded[:MAX_LINE - 3] + "..."
