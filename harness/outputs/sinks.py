"""Where a finished epoch's record goes: a sink is any class with two methods, `epoch(record)` and `close(best)`.
The Sinks hook hands every record to each sink in order, after the checkpoint, and tells them when the run ends. A
new place for records (a progress file, a notifier, a tracking server) is one more such class, added to the list
trial.py builds: it needs to know nothing of the loop."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Protocol

from harness.fit.hooks import Hook
from harness.outputs.records import nni_metric
from harness.outputs.run_folder import RunFolder

log = logging.getLogger("trial")


class EpochSink(Protocol):
    def epoch(self, record: dict[str, Any]) -> None:
        """One finished epoch: its record as metrics.jsonl holds it."""

    def close(self, best: dict[str, Any] | None) -> None:
        """The run ended (normally or not); best is the best epoch's record, None if no epoch finished."""


class Sinks(Hook):
    """The sinks as the loop's last hook, in their order."""
    name = "sinks"

    def __init__(self, sinks: list[EpochSink]) -> None:
        self.sinks = sinks

    def record_epoch(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.epoch(record)

    def after_train(self, best: dict[str, Any] | None) -> None:
        for sink in self.sinks:
            sink.close(best)


class MetricsFile:
    """metrics.jsonl in the run folder: one line per step, the run's records so far (`records`, the loop's own
    list, which a resume refills), rewritten whole each time."""

    def __init__(self, run: RunFolder, records: list[dict[str, Any]]) -> None:
        self.run, self.records = run, records

    def epoch(self, record: dict[str, Any]) -> None:
        self.run.write_metrics(self.records)

    def close(self, best: dict[str, Any] | None) -> None:
        pass


class NniReport:
    """One intermediate result per epoch; the best epoch's dict as the final result (standalone: NNI logs them)."""

    def __init__(self, key: str, reserved: Collection[str] = ()) -> None:
        self.key, self.reserved = key, reserved  # reserved: the search-space keys no metric may shadow

    def epoch(self, record: dict[str, Any]) -> None:
        import nni

        with unanswered_manager(f"epoch {record['epoch']}'s result"):
            nni.report_intermediate_result(nni_metric(record, self.key, self.reserved))

    def close(self, best: dict[str, Any] | None) -> None:
        import nni

        if best is not None:
            with unanswered_manager("the final result"):
                nni.report_final_result(nni_metric(best, self.key, self.reserved))


@contextlib.contextmanager
def unanswered_manager(what: str) -> Iterator[None]:
    """`nnictl stop` closes NNI's REST server about 3 s before it stops the trials (with SIGINT): a report in
    between fails to connect. The run folder already holds the epoch, so the trial logs one line and goes on until
    the signal comes (requests' errors are OSErrors)."""
    try:
        yield
    except OSError as error:
        log.warning("NNI's manager did not take %s (%s: experiment stopping?); the run folder has it",
                    what, type(error).__name__)


class LogLine:
    """A line per epoch in the trial log."""

    def __init__(self, epochs: int, key: str) -> None:
        self.epochs, self.key = epochs, key

    def epoch(self, record: dict[str, Any]) -> None:
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
        log.info("epoch %d/%d: %s%s", record["epoch"], self.epochs, numbers,
                 ", soft CSVs written" if record.get("dumped") else "")

    def close(self, best: dict[str, Any] | None) -> None:
        if best is not None:
            log.info("best epoch %d: %s %.4f", best["epoch"], self.key, best[self.key])


def tensorboard_dir(run_path: Path) -> Path:
    """Where NNI's web UI looks for a trial's TensorBoard logs ($NNI_OUTPUT_DIR/tensorboard); standalone runs
    write them into the run folder."""
    output = os.environ.get("NNI_OUTPUT_DIR")
    return Path(output) / "tensorboard" if output else run_path / "tensorboard"


def link_for_tensorboard_button(log_dir: Path) -> Path | None:
    """NNI 3.0's local service runs a trial in <experiment>/environments/<env>/trials/<id> ($NNI_OUTPUT_DIR), but
    its web UI's TensorBoard button opens <experiment>/trials/<id>/output/tensorboard, which nothing writes
    (tests/test_tensorboard_button.py pins both paths in NNI's code). A symbolic link there to the trial's own
    logs makes the button show them: NNI resolves it (realpathSync) before starting TensorBoard. Returns the
    link, or None where the layout is not NNI's local one (standalone, remote machines) or the place is taken."""
    output = Path(log_dir).parent
    if len(output.parents) < 4 or output.parent.name != "trials" or output.parents[2].name != "environments":
        return None
    link = output.parents[3] / "trials" / output.name / "output" / "tensorboard"
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(Path(log_dir).resolve(), target_is_directory=True)
    except OSError:  # a file system without links: the README's manual route still works
        return None
    return link if link.is_symlink() else None


def scalar_tag(key: str) -> str:
    """metrics.jsonl key -> TensorBoard tag, grouped by stage: train_loss -> train/loss, val_f1_mask -> val/f1_mask;
    with --ema_decay the trained weights' own scores go beside the average's: raw_val_acc -> val/raw_acc."""
    if key.startswith("raw_val_"):
        return f"val/raw_{key.removeprefix('raw_val_')}"
    stage, _, rest = key.partition("_")
    return f"{stage}/{rest}" if stage in ("train", "val") and rest else key


class TensorBoard:
    """Every number of each epoch's record as a TensorBoard scalar at step = epoch (loss, accuracy, macro-F1, the
    epoch's learning rate, images per second, seconds), for NNI's TensorBoard button."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.writer: Any = None  # made at the first record: importing tensorboard is no part of the start-up

    def epoch(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only for trials that log

            if os.environ.get("NNI_OUTPUT_DIR"):
                link_for_tensorboard_button(self.log_dir)
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(scalar_tag(key), value, global_step=record["epoch"])
        self.writer.flush()  # a trial may be killed at any epoch: what was logged stays readable

    def close(self, best: dict[str, Any] | None) -> None:
        if self.writer is not None:
            self.writer.close()
