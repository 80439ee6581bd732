"""Faults a day-long unattended search meets: full disks, files where folders belong, leftovers of killed writers,
Ctrl-C. Each ends in one clear line (or works and says what it did) and leaves nothing half-written."""
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.atomic import write_csv
from harness.errors import UserError
from harness.outputs.run_folder import RunFolder
from hostile_helpers import small_disk

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
        "--num_workers", "0", "--epochs", "1", "--dump_threshold", "0"]


def test_a_full_disk_ends_in_one_line_and_leaves_no_partial_file(tmp_path):
    frame = pd.DataFrame(np.random.default_rng(0).random((20000, 18)), columns=[str(k) for k in range(18)])
    with small_disk(tmp_path / "disk", "256k") as disk:
        with pytest.raises(UserError, match=rf"{disk} is full: writing big.csv needed more than .* MB free\); "
                                            "nothing was written"):
            write_csv(frame, disk / "big.csv")
        assert list(disk.iterdir()) == []


def test_a_trial_whose_output_disk_fills_up_ends_in_one_line(demo_dir, tmp_path):
    with small_disk(tmp_path / "disk", "16k") as disk:
        done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                               str(disk), "--cache_dir", str(tmp_path / "cache"), "--tensorboard", "false", *FAST],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert " is full: writing " in done.stderr.strip().splitlines()[-1]
        assert not list(disk.rglob(".*.tmp")), "a temporary file was left on the full disk"


@pytest.mark.parametrize("flag", ["--output_dir", "--cache_dir"])
def test_a_file_where_a_folder_belongs_is_named(demo_dir, tmp_path, flag):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    args = ["--output_dir", str(tmp_path / "runs"), "--cache_dir", str(tmp_path / "cache")]
    args[args.index(flag) + 1] = str(blocker)
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), *args, *FAST],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(f"{blocker} cannot be a folder: a file of that name is "
                                                          "in the way")
    assert blocker.read_text() == "mine"


def test_leftovers_of_a_killed_soft_csv_write_are_removed_by_the_next_run_of_that_folder(tmp_path):
    run = RunFolder(tmp_path, "exp", "multi_resnet10t_trial")
    leftover = run.path / ".submission3_0.9312_0.2100_soft.csv.abc123.tmp"
    leftover.write_text("ImageID,0\nhalf")
    mine = run.path / "notes.txt"
    mine.write_text("kept")
    RunFolder(tmp_path, "exp", "multi_resnet10t_trial").claim()  # NNI's resume re-runs the same trial
    assert not leftover.exists() and mine.read_text() == "kept"


def test_ctrl_c_ends_in_one_line():
    from harness.cli import run_cli

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        run_cli(interrupted, "trial.py")
    assert stop.value.code == 130


def test_a_trial_injected_through_nni_s_open_rest_api_cannot_write_elsewhere(demo_dir, tmp_path):
    """Anyone who reaches NNI's port can add a trial with any parameters: one naming output_dir fails at once."""
    import json
    import urllib.request

    import yaml

    from harness.experiment.config import load_config, with_overrides
    from harness.experiment.follower import wait
    from harness.experiment.nnictl import free_port, start, stop
    from harness.experiment.rest import NniRest

    evil = tmp_path / "written-by-an-attacker"
    config = with_overrides(
        load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "exp", max_trials=2,
        trial_args=["--data_dir", str(demo_dir), "--epochs", "1", "--img_size", "32", "--num_workers", "0"])
    # One trial at a time: side by side, NNI 3.0 may hand the injected set to the tuner's trial and the other way
    # round (README: the run folder), and its records, which this test reads, would name the wrong one.
    config["trialConcurrency"] = 1
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    experiment_id = start(path, port)
    try:
        injected = {"batch_size": 8, "model": "resnet10t", "criterion": "cross_entropy", "classification": "gender",
                    "lr": 0.003, "optimizer": "adam", "output_dir": str(evil)}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/nni/trial-jobs",
                                         data=json.dumps(injected).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass
        rest = NniRest(port)
        wait(rest, timeout=600, echo=lambda line: None)
        trials = rest.trials()
    finally:
        stop(experiment_id)
    by_output = {"output_dir" in json.loads(t["hyperParameters"][0])["parameters"]: t["status"] for t in trials}
    assert by_output == {True: "FAILED", False: "SUCCEEDED"}, trials
    assert not evil.exists(), "the injected trial wrote where it was told"
    logs = (tmp_path / "exp" / experiment_id).rglob("trial.stderr")
    stderr = "".join(log.read_text(errors="replace") for log in logs)
    assert "search-space key 'output_dir' cannot come from NNI" in stderr


def test_kills_at_random_moments_of_the_soft_csv_writes_leave_only_whole_files(demo_dir, tmp_path):
    """A bounded loop of SIGKILLs at random moments of a dumping trial: every visible CSV is whole and readable,
    and the run folder's next opening removes the hidden leftovers."""
    import random
    import signal
    import time

    rng = random.Random(7)
    output = tmp_path / "runs"
    for _attempt in range(4):
        trial = subprocess.Popen([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir),
                                  "--output_dir", str(output), "--cache_dir", str(tmp_path / "cache"), *FAST,
                                  "--epochs", "3", "--tensorboard", "false"],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill only once the trial has its run folder (on a busy machine the start alone can take 10 s), then at
        # a random moment of its epochs and dumps.
        deadline = time.monotonic() + 120
        while len(list(output.glob("standalone/*/params.json"))) <= _attempt and time.monotonic() < deadline:
            assert trial.poll() is None, "the trial ended before it was killed"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 6.0))
        trial.send_signal(signal.SIGKILL)
        trial.wait(timeout=30)
    for run in (output / "standalone").iterdir():
        for csv in run.glob("*.csv"):
            frame = pd.read_csv(csv)
            assert len(frame) in (35, 40) and not frame.isna().any().any(), f"{csv} is not whole"
        RunFolder(output / "standalone", "", run.name).claim()  # reopening (as --resume does) cleans what a kill left
        assert not list(run.glob(".*.tmp"))


EXIT_SCRIPT = """
import atexit, sys, threading, time
sys.path.insert(0, {root!r})
from harness.cli import EndBySignal, run_cli, without_teardown
from harness.errors import UserError

def main():
    atexit.register(lambda: open({marker!r}, "w").write("atexit ran"))
    worker = threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished")))
    worker.start()  # a non-daemon thread: joined before the exit, as Python would
    sys.stdout.write("buffered line")  # no newline, no flush: written only if the exit flushes
    {ending}

without_teardown(lambda: run_cli(main, "prog"))
"""


@pytest.mark.parametrize("ending, status, stderr", [
    ("return 0", 0, ""), ("return 3", 3, ""), ("raise UserError('bad --x: expected y')", 2,
                                               "prog: error: bad --x: expected y"),
    ("raise SystemExit('a message')", 1, "a message"),
    # Stops end by their signal (NNI: EARLY_STOPPED or USER_CANCELED, not FAILED), after the same orderly exit.
    ("raise KeyboardInterrupt", -signal.SIGINT, "prog: interrupted"), ("raise EndBySignal(15)", -signal.SIGTERM, "")])
def test_an_exit_without_teardown_keeps_what_an_ordinary_exit_does(tmp_path, ending, status, stderr):
    """trial.py ends through without_teardown (1.2 s less per trial): the status, the streams, atexit functions
    and running threads behave as in an ordinary exit."""
    marker = tmp_path / "marker"
    script = EXIT_SCRIPT.format(root=str(ROOT), marker=str(marker), ending=ending)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
    assert "buffered line" in done.stdout and "thread finished" in done.stdout
    assert marker.read_text() == "atexit ran"
    assert done.stderr.strip() == stderr


POOL_SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {root!r})
from harness.cli import run_cli, without_teardown

POOLS = []  # kept alive, as torch.compile keeps its pool: only Python's exit hook stops its workers

def main():
    POOLS.append(ThreadPoolExecutor(2))
    POOLS[0].submit(print, "task done")
    return 0

without_teardown(lambda: run_cli(main, "prog"))
"""


def test_an_exit_without_teardown_stops_a_thread_pool_left_running():
    """A trial with --compile on finished its epochs and then waited forever in the exit: the join of
    ThreadPoolExecutor's idle workers, which only threading's exit hook tells to stop."""
    done = subprocess.run([sys.executable, "-c", POOL_SCRIPT.format(root=str(ROOT))], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "task done" in done.stdout, done.stderr
