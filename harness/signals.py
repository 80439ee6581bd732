"""How a trial stops: SIGTERM or SIGINT (NNI's assessor, `nnictl stop`, the user) lets it finish the write it is
in; it then records in the run folder that it was stopped and after which epoch (stopped.json), keeps its
checkpoint, and exits at once.

Both SIGTERM and SIGINT stop it so. NNI 3.0's local training service stops a trial with SIGINT and sends SIGKILL
5 s later (nni_node/common/trial_keeper/process.js), so a write must finish within that; every write is a
temporary file renamed into place (harness/atomic.py), so even the SIGKILL leaves no half file. A SIGTERM comes
from the user, other training services or schedulers; SIGINT is also Ctrl-C.

Outside a write the signal interrupts the trial where it is (mid-batch: that epoch is lost, the last checkpoint is
the previous epoch's); inside `protect()` it waits for the block to end. The trial then ends by the signal itself
(harness.cli.EndBySignal): NNI shows it stopped (USER_CANCELED, or EARLY_STOPPED in remote reuse mode), not
FAILED."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from harness.cli import end_by_signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT, or by the trial itself (StopSignal.request, e.g. when its NNI
    manager is gone); a BaseException so that no `except Exception` swallows it. str() is what stopped it: the
    signal's name, or the request's cause."""

    def __init__(self, signum: int, cause: str | None = None) -> None:
        super().__init__(cause or signal.Signals(signum).name)
        self.signum = signum


class StopSignal:
    def __init__(self) -> None:
        self.owner = os.getpid()
        self.depth = 0
        self.pending: int | None = None
        self.cause: str | None = None
        self.stopping = False  # a Stopped was raised: later signals do not interrupt the stop's own writes

    def install(self) -> None:
        self.owner = os.getpid()
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        sys.unraisablehook = quiet_half_built_loader(sys.unraisablehook)

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.owner:
            # A loader worker forked with this handler (Ctrl-C reaches the whole process group): it ends as it
            # would without it. torch's worker loop leaves quietly on KeyboardInterrupt; the trial decides.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            end_by_signal(signum)
        self._stop(signum, None)

    def request(self, cause: str) -> None:
        """Stop as a SIGTERM would, for `cause`: at the end of the protected block in progress, else at once."""
        self._stop(signal.SIGTERM, cause)

    def _stop(self, signum: int, cause: str | None) -> None:
        if self.stopping:
            return  # a second signal while the first stop records itself: the record stays whole and true
        if self.depth:
            self.pending, self.cause = signum, cause
        else:
            self.stopping = True
            raise Stopped(signum, cause)

    @contextlib.contextmanager
    def protect(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None  # raised once: a later protected block is not stopped by it
            self.stopping = True
            raise Stopped(signum, self.cause)


def quiet_half_built_loader(hook: Any) -> Any:
    """A SIGTERM that lands while torch's DataLoader starts its workers leaves an iterator whose __init__ never
    finished; its __del__ then fails on the missing `_shutdown` attribute and Python prints an 'Exception ignored'
    traceback at exit, after the trial's one line. Only that case is dropped (its workers die with the trial:
    harness/data/batches.py die_with_parent); every other unraisable error goes to the previous hook."""
    def unraisable(info: Any) -> None:
        owner = type(getattr(info, "object", None)).__qualname__ if getattr(info, "object", None) else ""
        if (isinstance(info.exc_value, AttributeError) and "_shutdown" in str(info.exc_value)
                and "DataLoaderIter" in (owner + repr(getattr(info, "object", "")))):
            return
        hook(info)
    return unraisable
