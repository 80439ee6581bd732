"""trial.py --refit: a finished run trained again on every training image for the epochs its validation chose, and
the ensemble using the refit's eval CSV in place of its source's."""
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trial_checks import records

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8",
        "--lr", "0.003", "--num_workers", "0", "--dump_threshold", "0", "--seed", "5", "--tensorboard", "false"]


def trial(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "trial.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def refit_pair(demo_dir, tmp_path_factory):
    """A 3-epoch holdout run and its refit."""
    output = tmp_path_factory.mktemp("refit")
    done = trial("--data_dir", str(demo_dir), "--output_dir", str(output), "--epochs", "3", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    [source] = (output / "standalone").iterdir()
    done = trial("--refit", str(source))
    assert done.returncode == 0, done.stderr[-2000:]
    return source, source.with_name(source.name + "_refit")


def test_a_refit_trains_every_image_for_the_best_dumped_epoch(refit_pair):
    source, refit = refit_pair
    scores = {r["epoch"]: r["val_acc"] for r in records(source) if r["dumped"]}
    best = max(scores, key=lambda epoch: (scores[epoch], -epoch))
    params = json.loads((refit / "params.json").read_text())
    assert params["epochs"] == best and params["val_ratio"] == 0 and params["refit"] == str(source.resolve())
    assert params["validation"]["scheme"] == "refit" and params["validation"]["epoch"] == best
    trained = records(refit)
    assert [r["epoch"] for r in trained] == list(range(1, best + 1)) and trained[-1]["val_acc"] is None
    [eval_csv] = refit.glob("submission*_soft.csv")
    valid = refit / eval_csv.name.replace("submission", "valid", 1)
    assert filecmp.cmp(valid, next(source.glob(f"valid{best}_*_soft.csv")), shallow=False), \
        "the refit's validation CSV is its source's of the chosen epoch"


@pytest.mark.parametrize("mode, expected", [("replace", 3), ("add", 4), ("ignore", 3)])
def test_the_ensemble_puts_the_refit_in_place_of_its_source_epoch(refit_pair, tmp_path, mode, expected):
    source, _ = refit_pair
    done = subprocess.run([sys.executable, "-m", "ensemble", "--from", str(source.parent), "--refit", mode,
                           "-o", str(tmp_path / "sub.csv")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"gathered {expected} eval CSVs" in done.stdout


def test_a_refit_is_not_refit_again(refit_pair):
    source, refit = refit_pair
    for again, reason in ((refit, "this run is itself a refit"), (source, "the run was refit already")):
        done = trial("--refit", str(again))
        assert done.returncode == 2 and reason in done.stderr.splitlines()[-1], done.stderr[-1000:]


def test_a_kfold_run_is_refit_with_its_oof_csv_as_the_validation_partner(demo_dir, tmp_path):
    done = trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path), "--epochs", "2", "--folds", "2", *FAST)
    assert done.returncode == 0, done.stderr[-2000:]
    [source] = (tmp_path / "standalone").iterdir()
    summary = json.loads((source / "kfold.json").read_text())
    best = max((r for r in summary["epochs"] if r["dumped"]), key=lambda r: r["val_acc"])["epoch"]
    done = trial("--refit", str(source))
    assert done.returncode == 0, done.stderr[-2000:]
    refit = source.with_name(source.name + "_refit")
    [valid] = refit.glob("valid*_soft.csv")
    assert filecmp.cmp(valid, next(source.glob(f"valid{best}_*_soft.csv")), shallow=False)
