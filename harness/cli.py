"""How the command-line programs end: a UserError (or another user-facing error type) as one line on stderr and
status 2, Ctrl-C as "interrupted", a stop signal by that signal, and the end without the 1.2 s of module
teardown that torch and timm cost."""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from harness.errors import UserError, one_line


def exit_with(error: BaseException, prog: str) -> NoReturn:
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    raise SystemExit(2)


class EndBySignal(SystemExit):
    """A program that a signal stopped ends by that signal, once it has finished what it was writing.

    Its parent can then tell a stop from a failure (WIFSIGNALED), and NNI 3.0 does exactly that: its trial keeper
    gets no exit code from a process a signal ended, and the trial becomes USER_CANCELED (on the local service also
    for the assessor's stop: docs/nni-traps.md) or, in remote reuse mode, EARLY_STOPPED; any exit status but 0
    makes it FAILED (nni_node/training_service/v3/compat.js, onTrialEnd). A shell still reports 128 + the
    signal's number. Outside without_teardown it is an ordinary SystemExit with that status."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def end_by_signal(signum: int) -> NoReturn:
    """End this process by `signum` with the signal's default action (termination, no core for SIGINT/SIGTERM)."""
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached: a default-action signal sent to itself ends the process before kill returns


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
        raise EndBySignal(signal.SIGINT) from None  # so that a shell loop running it stops too, as for Python's own
    raise SystemExit(code or 0)


def without_teardown(entry: Callable[[], object]) -> NoReturn:
    """Run a script's entry point (run_cli) and end the process as Python would, less the teardown of its modules.

    A process that has imported torch and timm spends 1.2 s after its last line tearing down its modules (0.6 s for
    torch alone; docs/speed.md): every NNI trial paid it before NNI saw the trial end and started the next. Nothing
    in that teardown writes a file: outputs are written whole and renamed before this point, loader workers have
    stopped, and what else an orderly exit does is done here, in Python's own order: threading's exit hooks run and
    non-daemon threads joined (threading._shutdown, as Python's finalisation calls it), atexit functions run
    (multiprocessing's clean-up among them), logging and the standard streams flushed. An EndBySignal then ends the
    process by its signal. An exception other than SystemExit takes the ordinary way out, with its traceback."""
    signum = None
    try:
        entry()
        code: object = 0
    except SystemExit as done:
        code = done.code
        signum = done.signum if isinstance(done, EndBySignal) else None
    # Python's own shutdown of threads: threading's exit hooks first (they tell ThreadPoolExecutor's workers, such as
    # torch.compile's, to stop), then every non-daemon thread joined. Joining without the hooks waited forever.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    if code is not None and not isinstance(code, int):  # SystemExit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    if signum is not None:
        end_by_signal(signum)
    os._exit(code or 0)


def configure_logging() -> None:
    """Under NNI the root logger already writes to the trial log; standalone, our loggers get their own handler
    (the root logger is left alone: NNI logs its metric lines through it)."""
    standalone = not logging.getLogger().handlers
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("trial", "harness"):
        logging.getLogger(name).setLevel(logging.INFO)
        if standalone:
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).propagate = False
