"""trial.py run standalone, end to end, on data sets it has never seen."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.data.layouts import load_train
from harness.data.opencv import cv2
from harness.data.split import split_indices
from trial_checks import check_run_folder

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0"]


def run_trial(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "trial.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def only_run(output: Path) -> Path:
    runs = [p for p in (output / "standalone").iterdir()]
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("task, classes", [("multi", 18), ("gender", 2)])
def test_standalone_trial_writes_its_whole_run_folder(demo_dir, tmp_path, task, classes):
    output = tmp_path / "runs"
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(output), "--epochs", "2",
                     "--classification", task, "--dump_threshold", "0", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(output)
    params = check_run_folder(run, demo_dir, epochs=2)
    assert params["num_classes"] == classes and params["experiment_id"] == "standalone"
    assert params["nni_parameters"] == {}
    assert list(run.glob("submission1_*_soft.csv")), "threshold 0: the first epoch always dumps"
    check_tensorboard(run / "tensorboard", run / "metrics.jsonl")
    # validation holds whole people, the same ones whatever the task
    data = load_train(demo_dir)
    _, val_idx = split_indices(data.groups, data.group_strata, 0.2, 42)
    valid = pd.read_csv(next(run.glob("valid1_*_soft.csv")))
    assert sorted(valid["ImageID"]) == sorted(data.paths[i] for i in val_idx)


def test_no_dump_below_the_threshold(demo_dir, tmp_path):
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--epochs", "1",
                     "--dump_threshold", "1.0", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(tmp_path)
    record = json.loads((run / "metrics.jsonl").read_text())
    assert record["train_acc"] < 1.0 and record["dumped"] is False
    assert not list(run.glob("*.csv"))


def test_single_label_folder_tree_without_validation(tmp_path):
    """A plain contest: one folder per class, no eval/info.csv (every eval image, sorted), no validation split."""
    rng = np.random.default_rng(0)
    for label, colour in (("red", (0, 0, 255)), ("green", (0, 255, 0)), ("blue", (255, 0, 0))):
        (tmp_path / "data" / "train" / label).mkdir(parents=True)
        for i in range(6):
            image = np.clip(np.array(colour) + rng.integers(-30, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "data" / "train" / label / f"{i}.jpg"), image)
    (tmp_path / "data" / "eval" / "images").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "data" / "eval" / "images" / f"e{i}.png"), np.zeros((24, 24, 3), np.uint8))
    done = run_trial("--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "runs"), "--epochs", "1",
                     "--val_ratio", "0", "--dump_threshold", "0", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    run = only_run(tmp_path / "runs")
    params = json.loads((run / "params.json").read_text())
    assert params["num_classes"] == 3 and params["class_names"] == ["blue", "green", "red"]
    submission = pd.read_csv(next(run.glob("submission1_*_soft.csv")))
    assert submission["ImageID"].tolist() == ["e0.png", "e1.png", "e2.png", "e3.png"]
    assert list(submission.columns) == ["ImageID", "0", "1", "2"]
    assert not list(run.glob("valid*.csv"))
    record = json.loads((run / "metrics.jsonl").read_text())
    assert record["val_acc"] is None
    assert json.loads((run / "cost.json").read_text())["measured_on"] == "eval"  # no validation images to time


@pytest.mark.parametrize("args, message", [
    (["--classification", "race"], "argument --classification: invalid choice: 'race'"),
    (["--batch_size", "big"], "argument --batch_size: invalid int value: 'big'"),
    (["--data_dir", "/nonexistent/data"], "/nonexistent/data/train not found"),
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--lr", "-1"], "lr must be above 0, got -1.0"),
])
def test_bad_flags_fail_at_once_with_one_line(demo_dir, tmp_path, args, message):
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path), *args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("params.json")), "a failed trial left a run folder behind"


@pytest.mark.parametrize("cache", ["true", "false"])
def test_a_corrupt_photo_is_named_even_from_a_loader_worker(demo_dir, tmp_path, cache):
    import shutil

    data = shutil.copytree(demo_dir, tmp_path / "data")
    broken = next((data / "train" / "images").glob("000003_*")) / "normal.jpg"
    for old in broken.parent.glob("normal.*"):
        old.unlink()
    broken.write_bytes(b"\xff\xd8\xff truncated")
    done = run_trial("--data_dir", str(data), "--output_dir", str(tmp_path / "runs"), "--cache", cache,
                     "--cache_dir", str(tmp_path / "cache"), *FAST, "--num_workers", "1")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"trial.py: error: {broken} cannot be decoded as an image"
    assert not list((tmp_path / "cache").glob("*.npy")), "a cache was left from a failed build"
    assert not list((tmp_path / "runs").rglob("params.json")), "the failed trial left a run folder behind"


def test_a_task_the_data_set_cannot_give_is_refused(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "train" / label).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / label / "x.png"), np.zeros((8, 8, 3), np.uint8))
    done = run_trial("--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "runs"), "--classification", "age",
                     *FAST)
    assert done.returncode == 2
    assert "classification 'age' needs the mask contest's layout" in done.stderr


def test_nni_parameters_are_checked_before_any_work(demo_dir, tmp_path, monkeypatch):
    import nni

    import trial
    from harness.errors import UserError

    monkeypatch.setenv("NNI_EXP_ID", "expid")  # as NNI's training service starts a trial (harness/nni_runtime.py)
    monkeypatch.setattr(nni, "get_next_parameter", lambda: {"batch_size": 16, "dropout": 0.5})
    with pytest.raises(UserError, match="search-space key 'dropout' is not a trial.py flag"):
        trial.main(["--data_dir", str(demo_dir), "--output_dir", str(tmp_path)])
    assert not (tmp_path / "standalone").exists()


def test_a_diverged_trial_stops_at_once_and_still_reports_its_best_epoch(demo_dir, tmp_path, monkeypatch):
    """Epoch 1 trains, epoch 2's loss turns NaN: the trial ends with one line, epoch 1 is the final result."""
    import nni

    import trial
    from harness.fit import setup
    from harness.train.passes import TrainingDiverged

    real, calls, finals = setup.train_one_epoch, [], []

    def diverging(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise TrainingDiverged("the training loss became nan by batch 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(setup, "train_one_epoch", diverging)
    monkeypatch.setenv("NNI_EXP_ID", "expid")  # as NNI's training service starts a trial
    monkeypatch.setattr(nni, "get_experiment_id", lambda: "expid")  # nni read its variables when first imported
    monkeypatch.setattr(nni, "get_trial_id", lambda: "Tr1al")
    monkeypatch.setattr(nni, "report_intermediate_result", lambda metric: None)
    monkeypatch.setattr(nni, "report_final_result", finals.append)
    with pytest.raises(TrainingDiverged) as caught:
        trial.main(["--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--epochs", "4", *FAST])
    assert str(caught.value) == ("the training loss became nan by batch 3 in epoch 2: the trial stopped (best epoch 1 "
                                 "reported as the final result); try a lower --lr (it was 0.003)")
    assert len(calls) == 2, "no epoch ran after the divergence"
    assert [final["epoch"] for final in finals] == [1]
    from harness.locks import try_lock

    (run,) = (tmp_path / "expid").iterdir()
    descriptor = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    try:  # predict.py or a --resume of it may write there now
        assert try_lock(descriptor), "the ended trial still holds its run folder's lock"
    finally:
        os.close(descriptor)
    [run] = (tmp_path / "expid").iterdir()
    assert run.name.endswith("_Tr1al") and len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_huge_learning_rate_ends_in_one_line(demo_dir, tmp_path):
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--epochs", "2", *FAST,
                     "--lr", "1e30", "--optimizer", "sgd")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the training loss became" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("key, tag", [("train_loss", "train/loss"), ("val_f1_mask", "val/f1_mask"), ("lr", "lr"),
                                      ("train_images_per_s", "train/images_per_s"), ("seconds", "seconds"),
                                      ("raw_val_acc", "val/raw_acc"), ("raw_val_f1_age", "val/raw_f1_age")])
def test_tensorboard_groups_every_score_by_stage(key, tag):
    from harness.outputs.sinks import scalar_tag

    assert scalar_tag(key) == tag


def check_tensorboard(log_dir: Path, metrics: Path) -> None:
    """The event files hold every number of metrics.jsonl, per epoch, under TensorBoard tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from harness.outputs.sinks import scalar_tag

    events = EventAccumulator(str(log_dir))
    events.Reload()
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    for key in ("train_loss", "train_acc", "val_acc", "val_f1", "lr", "train_images_per_s", "seconds"):
        scalars = events.Scalars(scalar_tag(key))
        assert [s.step for s in scalars] == [r["epoch"] for r in records]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in records], rel=1e-6)
    assert "train/loss" in events.Tags()["scalars"]


def test_a_standalone_trial_never_imports_nni(demo_dir, tmp_path):
    """`import nni` is about 2 s of start-up (harness/nni_runtime.py); outside NNI the trial runs without it."""
    script = ("import sys, trial; code = trial.main(sys.argv[1:]); "
              "print('nni imported' if 'nni' in sys.modules else 'no nni'); sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    done = subprocess.run([sys.executable, "-c", script, "--data_dir", str(demo_dir), "--output_dir",
                           str(tmp_path), "--epochs", "1", *FAST], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "no nni"
    assert len(only_run(tmp_path).joinpath("metrics.jsonl").read_text().splitlines()) == 1


def test_a_trial_with_loader_workers_leaves_the_image_libraries_to_them(demo_dir, tmp_path):
    """pandas, albumentations and OpenCV are a second and 100 MB of a trial's start on 2 cores: with loader workers
    and no dump, the trial's own process imports none of them (docs/speed.md, start-up)."""
    code = ("import sys\nimport trial\n"
            f"assert trial.main(['--data_dir', {str(demo_dir)!r}, '--output_dir', {str(tmp_path / 'runs')!r}, "
            f"'--epochs', '1', '--dump_threshold', '1', '--cache_dir', {str(tmp_path / 'cache')!r}, "
            "'--model', 'resnet10t', '--pretrained', 'false', '--img_size', '32', '--batch_size', '8', "
            "'--num_workers', '1']) == 0\n"
            "print(sorted(m for m in ('pandas', 'albumentations', 'cv2') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[]"
