"""What the hostile-input tests share: tiny trials run as real processes, their one-line failures, copies of the
demo data, small real disks (tmpfs), and a pickled payload that proves it ran by creating a file."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
        "--num_workers", "0", "--epochs", "1", "--dump_threshold", "0", "--tensorboard", "false"]


def run_trial(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "trial.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_predict(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "predict.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def one_line(done: subprocess.CompletedProcess) -> str:
    """The error line of a program that failed as a user error should: status 2, no traceback; its last line."""
    assert done.returncode == 2, f"status {done.returncode}: {done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


def trained_run(data_dir: Path, output: Path, *args: str) -> Path:
    """A finished tiny standalone trial's run folder."""
    done = run_trial("--data_dir", str(data_dir), "--output_dir", str(output), "--cache_dir",
                     str(output / "cache"), *FAST, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (output / "standalone").iterdir()
    return run


def data_copy(demo_dir: Path, tmp_path: Path) -> Path:
    return shutil.copytree(demo_dir, tmp_path / "data")


@contextlib.contextmanager
def small_disk(folder: Path, size: str, options: str = "") -> Iterator[Path]:
    """A tmpfs of `size` at folder (CI runs as root; on a machine that refuses the mount the test says why)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{',' + options if options else ''}",
                              "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


class Payload:
    """Pickled, it makes the unpickler run `touch marker`: the file appears if, and only if, it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, **fields) -> None:
    """Overwrites a checkpoint with one shaped like ours that carries the payload."""
    import torch

    torch.save({"format": 2, **fields, "payload": Payload(marker)}, path)


def payload_runs_when_unpickled(path: Path, marker: Path) -> bool:
    """The planted file really runs code for a loader without weights_only (so the test can fail)."""
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(path)!r}, weights_only=False)"],
                   capture_output=True, timeout=120)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


def patched_trial(patch: str, *args: str) -> subprocess.Popen:
    """trial.py with `patch` (Python source) run first in its process: a fault injected at an exact moment, such as a
    SIGKILL between a dump and its checkpoint."""
    script = f"import runpy, sys\n{patch}\nsys.argv = ['trial.py', *sys.argv[1:]]\n" \
             f"runpy.run_path({str(ROOT / 'trial.py')!r}, run_name='__main__')\n"
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
