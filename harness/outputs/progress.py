"""Progress within an epoch, for the trial log: a plain line every `interval` seconds, with no carriage-return bar,
because NNI's trial log is a file read in a browser. It is called after every training step and only reads a clock,
so it never synchronises the device and costs nothing measurable."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("trial")


def progress_line(epoch: int, epochs: int, batch: int, batches: int, images: int, elapsed: float) -> str:
    """'epoch 2/6: batch 120/400 (30%), 85 img/s, 3m17s left in the epoch' (pure, for the tests)."""
    rate = images / elapsed if elapsed > 0 else 0.0
    left = elapsed / batch * (batches - batch) if batch else 0.0
    minutes, seconds = divmod(int(round(left)), 60)
    return (f"epoch {epoch}/{epochs}: batch {batch}/{batches} ({100 * batch // max(batches, 1)}%), "
            f"{rate:.0f} img/s, {minutes}m{seconds:02d}s left in the epoch")


class EpochProgress:
    """train_one_epoch's on_batch hook: logs progress_line at most every `interval` seconds."""

    def __init__(self, epoch: int, epochs: int, batches: int, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, emit: Callable[[str], None] = log.info) -> None:
        self.epoch, self.epochs, self.batches, self.interval = epoch, epochs, batches, interval
        self.clock, self.emit = clock, emit
        self.started = self.last = clock()

    def __call__(self, batch: int, images: int) -> None:
        now = self.clock()
        if now - self.last >= self.interval and batch < self.batches:
            self.last = now
            self.emit(progress_line(self.epoch, self.epochs, batch, self.batches, images, now - self.started))
