"""Checkpoints, SIGTERM and resume: a trial killed mid-run and resumed continues as if it had never stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fit_helpers import loop_with, tiny_fit

from harness.outputs.run_folder import RunFolder, stop_record
from harness.signals import STOP_SIGNALS, Stopped, StopSignal
from harness.train.checkpoint import Checkpoint, is_better, load
from trial_checks import records, trial, without_timing

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0", "--dump_threshold", "0", "--seed", "5"]




# With the techniques that draw random numbers or keep state of their own: the weighted sampler (the loader's
# generator), MixUp/CutMix (numpy's), the weight average (its weights and step count in last.pt).
TECHNIQUES = ["--sampler", "weighted", "--mixup", "0.4", "--cutmix", "1.0", "--ema_decay", "0.9",
              "--class_weights", "inverse"]


# SAM: its state is the base optimiser's, its second pass draws no random numbers of its own.
SAM = ["--optimizer", "asam", "--sam_base", "sgd", "--mixup", "0.4", "--ema_decay", "0.9"]


@pytest.mark.parametrize("techniques", [[], TECHNIQUES, SAM], ids=["plain", "sampler-mixing-ema", "asam"])
def test_a_trial_killed_mid_run_resumes_where_an_uninterrupted_run_would_be(demo_dir, tmp_path, techniques):
    epochs = 4
    common = ["--data_dir", str(demo_dir), "--epochs", str(epochs), *FAST, *techniques]
    whole = trial(*common, "--output_dir", str(tmp_path / "whole"))
    cut = trial(*common, "--output_dir", str(tmp_path / "cut"))
    # SIGTERM as soon as the first epoch is on record, so the stop falls in the middle of the run.
    deadline = time.monotonic() + 300
    while not list((tmp_path / "cut").glob("standalone/*/metrics.jsonl")) and time.monotonic() < deadline:
        assert cut.poll() is None, cut.communicate()[1][-2000:]
        time.sleep(0.05)
    started = time.monotonic()
    cut.send_signal(signal.SIGTERM)
    _, err = cut.communicate(timeout=60)
    assert time.monotonic() - started < 20, "a stopped trial must exit promptly"
    assert cut.returncode == -signal.SIGTERM, err[-2000:]  # ended by the signal: NNI shows a stop, not a failure
    run = next((tmp_path / "cut" / "standalone").iterdir())
    stopped = json.loads((run / "stopped.json").read_text())
    done = records(run)
    assert stopped["signal"] == "SIGTERM" and stopped["last_completed_epoch"] == done[-1]["epoch"] < epochs
    assert stopped["checkpoint"] == "last.pt" and (run / "last.pt").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
    csvs_before = {p.name: p.read_bytes() for p in run.glob("*.csv")}

    resumed = trial("--resume", str(run))
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    assert not (run / "stopped.json").exists()
    reference_run = next((tmp_path / "whole" / "standalone").iterdir())
    reference = records(reference_run)
    after = records(run)
    assert [r["epoch"] for r in after] == list(range(1, epochs + 1)), "one line per epoch"
    assert after[:len(done)] == done, "the epochs before the stop are kept as they were"
    # Same seed, CPU, no loader workers: every number of the later epochs equals the uninterrupted run's.
    assert [without_timing(r) for r in after] == [without_timing(r) for r in reference]
    for name, content in csvs_before.items():
        assert (run / name).read_bytes() == content, f"{name} was rewritten"
    # Which epochs write CSVs (train accuracy over the threshold, a falling loss) is decided as without the stop;
    # with MixUp the loss may rise in one epoch, so the count is the uninterrupted run's, not `epochs`.
    written = sorted(p.name for p in run.glob("submission*_soft.csv"))
    assert written and written == sorted(p.name for p in reference_run.glob("submission*_soft.csv"))


def test_resume_refuses_a_folder_without_a_checkpoint(tmp_path):
    (tmp_path / "params.json").write_text("{}")
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--resume", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("last.pt not found (the run was not started with "
                                                         "--checkpoint last, or finished no epoch)")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_waits_for_the_write_it_interrupts(signum):
    """SIGTERM (the user, other schedulers) and SIGINT (NNI 3.0's local service, Ctrl-C) stop a trial alike."""
    stop = StopSignal()
    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    stop.install()
    written = []
    try:
        with pytest.raises(Stopped) as caught:
            with stop.protect():
                os.kill(os.getpid(), signum)
                written.append("whole")  # still runs: the signal waits for the block
        assert written == ["whole"] and caught.value.signum == signum
        # The stop then records itself (stopped.json) in a protected block: a second signal interrupts neither
        # that block nor its end, so what the stop writes and logs is whole and true.
        with stop.protect():
            os.kill(os.getpid(), signum)
            written.append("stop recorded")
        assert written == ["whole", "stop recorded"] and stop.pending is None
        fresh = StopSignal()
        fresh.install()
        with pytest.raises(Stopped):  # outside a protected block a stop is immediate
            os.kill(os.getpid(), signum)
            time.sleep(1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def test_a_requested_stop_waits_like_a_signal_and_names_its_cause():
    """The trial stops itself so (its NNI manager is gone): at the end of the write in progress."""
    stop = StopSignal()
    with pytest.raises(Stopped) as caught:
        with stop.protect():
            stop.request("NNI manager gone")
            assert stop.pending == signal.SIGTERM  # not yet: the write goes on
    assert str(caught.value) == "NNI manager gone" and caught.value.signum == signal.SIGTERM


def test_a_forked_loader_worker_is_not_stopped_as_the_trial():
    """Ctrl-C reaches a DataLoader worker too, which inherited the handler: it ends as without it
    (KeyboardInterrupt, which torch's worker loop takes quietly), never as a second trial writing stopped.json."""
    stop = StopSignal()
    old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    stop.install()
    try:
        stop.owner = -1  # as seen from a forked child
        with pytest.raises(KeyboardInterrupt):  # not Stopped, a BaseException of its own
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def test_stop_record_names_the_last_completed_epoch():
    assert stop_record("SIGTERM", [{"epoch": 1}, {"epoch": 2}], "last.pt")["last_completed_epoch"] == 2
    assert stop_record("SIGTERM", [], None)["last_completed_epoch"] == 0


def test_best_checkpoint_follows_the_metric(tmp_path):
    assert is_better({"val_acc": 0.5}, None, "val_acc") and not is_better({"val_acc": 0.5}, 0.5, "val_acc")
    model = torch.nn.Linear(2, 2)
    run = RunFolder(tmp_path, "exp", "run")
    checkpoint = Checkpoint(run, "best", "val_acc")
    loop = loop_with([checkpoint], tiny_fit(model))
    for epoch, score in [(1, 0.4), (2, 0.7), (3, 0.6)]:
        with torch.no_grad():
            model.weight.fill_(epoch)
        loop.records.append({"epoch": epoch, "val_acc": score})
        checkpoint.record_epoch(loop.records[-1])
    saved = load(run.path / "best.pt")
    assert saved["epoch"] == 2 and torch.all(saved["model"]["weight"] == 2)
    assert not (run.path / "last.pt").exists()


def test_predict_writes_a_new_pair_the_ensemble_reads(demo_dir, tmp_path):
    import pandas as pd

    output = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                           str(output), "--epochs", "1", "--checkpoint", "best", *FAST],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = next((output / "standalone").iterdir())
    # Read before predict.py writes beside it: 'valid1_*[0-9]_soft.csv' would also match '...-pred1_soft.csv'.
    own = pd.read_csv(next(run.glob("valid1_*_soft.csv")))
    again = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(run)], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    new = pd.read_csv(next(run.glob("valid1_*-pred1_soft.csv")))
    # the same weights and predictor as the dump: the same probabilities
    assert np.allclose(own.iloc[:, 2:].to_numpy(), new.iloc[:, 2:].to_numpy(), atol=1e-5)
    flipped = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(run), "--tta", "hflip"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert flipped.returncode == 0, flipped.stderr[-2000:]
    mirrored = pd.read_csv(next(run.glob("valid1_*-pred2_soft.csv")))
    assert mirrored["ImageID"].tolist() == own["ImageID"].tolist()
    assert not np.allclose(own.iloc[:, 2:].to_numpy(), mirrored.iloc[:, 2:].to_numpy(), atol=1e-5), \
        "--tta hflip predicted exactly what the plain predictor did"
    blended = subprocess.run([sys.executable, "-m", "ensemble", "--from", str(run), "--select", "-o",
                              str(tmp_path / "sub.csv")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert blended.returncode == 0, blended.stderr[-2000:]
    assert "gathered 3 eval CSVs from 1 runs" in blended.stdout, blended.stdout


@pytest.mark.parametrize("moment", ["while starting", "while the cache is built"])
def test_a_sigterm_before_the_first_epoch_ends_quietly_and_leaves_nothing(demo_dir, tmp_path, moment):
    """NNI's assessor or `nnictl stop` can stop a trial that is still reading its data: status 143 (or the
    default SIGTERM death while Python is still importing), no traceback, no run folder without an epoch, no
    cache file left half built."""
    output, cache = tmp_path / "out", tmp_path / "cache"
    stopped = trial("--data_dir", str(demo_dir), "--epochs", "3", *FAST, "--output_dir", str(output),
                    "--cache", "true", "--cache_dir", str(cache), "--num_workers", "1")
    if moment == "while starting":  # imports, parameters, the data set's tables, the model
        time.sleep(4.0)
    else:  # the run folder exists; the cache's loader is starting its workers
        deadline = time.monotonic() + 120
        for line in stopped.stdout:
            if "building the image cache" in line or time.monotonic() > deadline:
                break
    stopped.send_signal(signal.SIGTERM)
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == -signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    runs = list(output.glob("standalone/*"))
    assert not [r for r in runs if not (r / "metrics.jsonl").exists()], "a run folder without an epoch was left"
    assert not list(cache.rglob("*.tmp")), "a half-built cache was left"


# A SIGTERM sent by the trial to itself at the exact moment, so that the window is hit on every run, not by chance
# on a loaded machine: right after the run folder is made, and while its lock is being taken.
SIGTERM_AT = """
import os, runpy, signal, sys
import harness.outputs.run_folder as run_folder
real = getattr(run_folder, sys.argv[1])
def at_the_moment(*args, **kwargs):
    result = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return result
setattr(run_folder, sys.argv[1], at_the_moment)
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("moment", ["make_folder", "wait_for_lock"])
def test_a_sigterm_between_making_the_run_folder_and_claiming_it_leaves_no_folder(demo_dir, tmp_path, moment):
    output = tmp_path / "out"
    stopped = subprocess.run([sys.executable, "-c", SIGTERM_AT, moment, str(ROOT / "trial.py"), "--data_dir",
                              str(demo_dir), "--epochs", "1", *FAST, "--output_dir", str(output)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == -signal.SIGTERM, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert not list(output.glob("standalone/*")), "a run folder without an epoch was left"


def test_only_the_half_built_loader_s_unraisable_error_is_dropped():
    from types import SimpleNamespace

    from harness.signals import quiet_half_built_loader

    class _MultiProcessingDataLoaderIter:
        pass

    seen = []
    hook = quiet_half_built_loader(seen.append)
    half_built = SimpleNamespace(exc_value=AttributeError("'_MultiProcessingDataLoaderIter' object has no attribute "
                                                          "'_shutdown'"), object=_MultiProcessingDataLoaderIter())
    other = SimpleNamespace(exc_value=AttributeError("no attribute '_shutdown'"), object=object())
    hook(half_built)
    hook(other)
    assert seen == [other]
