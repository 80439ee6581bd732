"""Processes that die, stop or run twice (issue 25), as real processes: kill -9 at exact moments, SIGSTOP, two
resumes of one folder, a manager that dies under its trial. Each ends consistent: one writer per run folder, no
wait without end, no dump without its checkpoint, a stop log that tells the truth."""
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from harness.outputs.reading import read_dumps
from hostile_helpers import FAST, ROOT, data_copy, one_line, patched_trial, run_predict, run_trial, trained_run
from trial_checks import records

# A 1-epoch run whose params.json then asks for many more: its --resume trains for a while.
LONG = 40


def long_resumable(demo_dir, tmp_path):
    run = trained_run(demo_dir, tmp_path / "out")
    params = json.loads((run / "params.json").read_text())
    (run / "params.json").write_text(json.dumps({**params, "epochs": LONG}))
    return run


def wait_for(condition, seconds, process=None, what=""):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert process is None or process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.1)


def test_two_resumes_of_one_folder_at_once_the_second_refuses(demo_dir, tmp_path):
    run = long_resumable(demo_dir, tmp_path)
    first = subprocess.Popen([sys.executable, str(ROOT / "trial.py"), "--resume", str(run)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(records(run)) >= 2, 300, first, "the first resume's epoch")
        second = run_trial("--resume", str(run))
        assert one_line(second).endswith(f"{run} is being written by another process (process {first.pid}) (a "
                                         "second --resume of it, or an earlier run of this NNI trial still running): "
                                         "not started, nothing written (waited 10 s)")
        assert first.poll() is None, "the first resume was disturbed"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    done = records(run)
    assert [r["epoch"] for r in done] == list(range(1, len(done) + 1)), "metrics.jsonl is not one writer's"
    assert json.loads((run / "stopped.json").read_text())["last_completed_epoch"] == done[-1]["epoch"]


def test_predict_beside_the_folder_s_writer_refuses_and_writes_nothing(demo_dir, tmp_path):
    """The lock as the folder's trial (or another predict.py) holds it: this process takes it."""
    from harness.locks import try_lock

    run = trained_run(demo_dir, tmp_path / "out")
    before = sorted(p.name for p in run.iterdir())
    holder = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert try_lock(holder)
        refused = run_predict(str(run))
    finally:
        os.close(holder)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert one_line(refused).endswith(f"{run} is being written by another process (process {os.getpid()}) (its "
                                      "trial still training, or another predict.py of it): not started, nothing "
                                      "written (waited 10 s)")
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_trial_whose_nni_manager_died_stops_after_its_epoch(demo_dir, tmp_path):
    """A stand-in for NNI's manager starts the trial (under NNI's environment variables) and is killed -9: the
    trial, which would train on unheard (and beside NNI's re-run of it after `nnictl resume`), stops after the epoch
    it is in, as a SIGTERM would stop it."""
    output = tmp_path / "out"
    env = {**os.environ, "NNI_EXP_ID": "fakeexp", "NNI_TRIAL_JOB_ID": "Abc12", "NNI_PLATFORM": ""}
    env.pop("NNI_PLATFORM")  # NNI's standalone command channel: parameters {} and metrics logged
    command = [sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir", str(output),
               "--cache_dir", str(tmp_path / "cache"), *FAST, "--epochs", str(LONG)]
    manager = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                                "print(subprocess.Popen(sys.argv[1:]).pid, flush=True); time.sleep(3600)", *command],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    trial_pid = int(manager.stdout.readline())
    run = output / "fakeexp"
    try:
        wait_for(lambda: list(run.glob("*/metrics.jsonl")), 300, manager, "the trial's first epoch")
        manager.kill()
        manager.wait(timeout=30)
        wait_for(lambda: not os.path.exists(f"/proc/{trial_pid}") or open(f"/proc/{trial_pid}/stat").read().split(
            ")")[1].split()[0] == "Z", 300, what="the orphaned trial to stop")
    finally:
        if os.path.exists(f"/proc/{trial_pid}"):
            os.kill(trial_pid, signal.SIGKILL)
    (folder,) = run.iterdir()
    stopped = json.loads((folder / "stopped.json").read_text())
    done = records(folder)
    assert stopped["signal"] == "NNI manager gone" and stopped["last_completed_epoch"] == done[-1]["epoch"] < LONG
    assert torch.load(folder / "last.pt", weights_only=True)["step"] == done[-1]["epoch"]


SLOW_DECODING = """
import sys, time
from pathlib import Path
from harness.data.batches import DecodedImages
from harness.data.image_cache import cached_images
from harness.data.layouts import list_images
decode = DecodedImages.__getitem__
DecodedImages.__getitem__ = lambda self, i: (time.sleep(0.05), decode(self, i))[1]
root = Path(sys.argv[1])
cached_images(root, list_images(root), 32, 0.8, Path(sys.argv[2]), num_workers=0)
"""


def test_a_stopped_cache_builder_is_given_up_on(demo_dir, tmp_path, monkeypatch, caplog):
    """A builder stopped with SIGSTOP (Ctrl-Z) keeps the cache's lock: the next trial waited forever. Now it gives
    up once the builder has made no progress for STALL_S seconds (2 here), says so in one line and decodes from
    disk."""
    from harness.data import image_cache
    from harness.data.layouts import list_images

    root, cache = demo_dir / "eval" / "images", tmp_path / "cache"
    builder = subprocess.Popen([sys.executable, "-c", SLOW_DECODING, str(root), str(cache)], cwd=ROOT)
    try:
        wait_for(lambda: list(cache.glob(".*.tmp")), 120, builder, "the build")
        builder.send_signal(signal.SIGSTOP)
        monkeypatch.setattr(image_cache, "STALL_S", 2.0)
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            assert image_cache.cached_images(root, list_images(root), 32, 0.8, cache) is None
        assert time.monotonic() - started < 30
        (lock,) = cache.glob("*.lock")
        assert f"the image cache's builder (process {builder.pid}) has made no progress for 2 s (stopped or hung; " \
               f"{lock} unchanged): decoding from disk instead" in caplog.text
    finally:
        builder.kill()
        builder.wait(timeout=30)


KILL_AT_CHECKPOINT = """
import os, signal
from harness.train.checkpoint import Checkpoint
record_epoch = Checkpoint.record_epoch
def killed_at_epoch_2(self, record):
    if record["epoch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # epoch 2's soft CSVs are written; its checkpoint is not
    record_epoch(self, record)
Checkpoint.record_epoch = killed_at_epoch_2
"""


def test_a_kill_between_a_dump_and_its_checkpoint_leaves_no_orphan_pair_after_resume(demo_dir, tmp_path):
    output = tmp_path / "out"
    killed = patched_trial(KILL_AT_CHECKPOINT, "--data_dir", str(demo_dir), "--output_dir", str(output),
                           "--cache_dir", str(tmp_path / "cache"), *FAST, "--epochs", "3")
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    (run,) = (output / "standalone").iterdir()
    assert [d.epoch for d in read_dumps(run)] == [1, 2] and len(records(run)) == 1
    # Trained again, epoch 2 may not give the same figures (a GPU, loader workers): the orphan's name then differs.
    orphan = next(d for d in read_dumps(run) if d.epoch == 2)
    for name in (orphan.eval_csv, orphan.valid_csv):
        (run / name).rename(run / name.replace(f"_{orphan.train_acc}_", "_0.1111_"))
    resumed = run_trial("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "removed submission2_0.1111_" in resumed.stdout
    done = records(run)
    dumps = read_dumps(run)
    assert [r["epoch"] for r in done] == [1, 2, 3]
    assert [d.epoch for d in dumps] == [r["epoch"] for r in done if r["dumped"]] and 2 in [d.epoch for d in dumps]
    by_epoch = {r["epoch"]: r for r in done}
    for dump in dumps:  # every pair is the one its metrics line names
        record = by_epoch[dump.epoch]
        assert (dump.train_acc, dump.train_loss) == (f"{record['train_acc']:.4f}", f"{record['train_loss']:.4f}")


TERM_DURING_DUMP = """
import os, signal
from harness.outputs.run_folder import RunFolder
write = RunFolder.write_soft_csvs
def stopped_twice_while_writing(self, epoch, *args, **kwargs):
    if epoch == 2:
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside the protected write: it waits for the write
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, as an impatient scheduler sends
    return write(self, epoch, *args, **kwargs)
RunFolder.write_soft_csvs = stopped_twice_while_writing
"""


def test_a_sigterm_during_a_protected_write_logs_the_truth(demo_dir, tmp_path):
    """The log said 'stopped ... before the run folder was made: nothing was written' after such a stop. Now: the
    write finishes, stopped.json and the log name the last epoch on record, and the resume completes."""
    output = tmp_path / "out"
    stopped = patched_trial(TERM_DURING_DUMP, "--data_dir", str(demo_dir), "--output_dir", str(output),
                            "--cache_dir", str(tmp_path / "cache"), *FAST, "--epochs", "3")
    out, err = stopped.communicate(timeout=600)
    assert stopped.returncode == -signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "nothing was written" not in out + err
    (run,) = (output / "standalone").iterdir()
    assert "stopped by SIGTERM after epoch 1" in out
    assert json.loads((run / "stopped.json").read_text())["last_completed_epoch"] == 1 == len(records(run))
    assert not list(run.glob(".*.tmp")), "the interrupted write left a temporary file"
    resumed = run_trial("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = records(run)
    assert [r["epoch"] for r in done] == [1, 2, 3]
    assert [d.epoch for d in read_dumps(run)] == [r["epoch"] for r in done if r["dumped"]]


KILL_WHILE_REMOVING_FOLDS = """
import os, shutil, signal
from harness.validation import kfold
rmtree = shutil.rmtree
def killed_midway(path, *args, **kwargs):
    if str(path).endswith(".folds.removing") and os.path.isdir(path):
        os.remove(next(os.scandir(path)).path)  # the removal has begun
        os.kill(os.getpid(), signal.SIGKILL)
    return rmtree(path, *args, **kwargs)
kfold.shutil.rmtree = killed_midway
"""


def test_a_kill_while_k_fold_removes_its_folds_leaves_a_resumable_run(demo_dir, tmp_path):
    output = tmp_path / "out"
    killed = patched_trial(KILL_WHILE_REMOVING_FOLDS, "--data_dir", str(demo_dir), "--output_dir", str(output),
                           "--cache_dir", str(tmp_path / "cache"), *FAST, "--folds", "2")
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    (run,) = (output / "standalone").iterdir()
    assert (run / ".folds.removing").is_dir() and not (run / "folds").exists() and (run / "kfold.json").is_file()
    resumed = run_trial("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cross-validated (2 folds)" in resumed.stdout
    assert not (run / ".folds.removing").exists()


@pytest.mark.parametrize("place", ["standalone/db", "standalone/log/x", "elsewhere"])
def test_an_injected_pbt_folder_beside_nni_s_own_files_is_refused(demo_dir, tmp_path, place):
    """NNI's PBT folders arrive through its unauthenticated REST API: <experiment>/db is where nni.sqlite lives."""
    output = tmp_path / "out"
    folder = tmp_path / "elsewhere" if place == "elsewhere" else output / place
    done = run_trial("--data_dir", str(data_copy(demo_dir, tmp_path)), "--output_dir", str(output), *FAST,
                     "--save_checkpoint_dir", str(folder))
    expected = "is outside the experiment's folder" if place == "elsewhere" else \
        f"is inside NNI's own {place.split('/')[1]}/ folder of the experiment"
    assert f"save_checkpoint_dir {folder} {expected}" in one_line(done)
    assert not folder.exists()
