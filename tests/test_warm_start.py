"""--warm_start: which earlier trials are imported and with what, which tuners are refused, and a real experiment
whose TPE received the imported trials."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.experiment.config import load_config
from harness.experiment.warm_start import REFUSED, check_tuner, fits, trial_data

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"lr": {"_type": "loguniform", "_value": [1e-3, 5e-3]},
         "batch_size": {"_type": "choice", "_value": [16, 32]}}


def earlier_run(exp: Path, trial: str, lr: float, scores: list[tuple[float, float]], epochs: int | None = None,
                task: str = "multi", stopped: bool = False, nni_lr: float | None = None) -> None:
    """A run folder as trial.py leaves it: scores are (val_acc, val_f1) per epoch. nni_lr: what NNI's record says
    it ran (NNI 3.0 can pair the wrong set with a trial), when it differs from what it ran."""
    folder = exp / f"{task}_{trial}"
    folder.mkdir(parents=True)
    params = {"classification": task, "lr": lr, "batch_size": 16, "epochs": epochs or len(scores), "folds": 1,
              "metric": "val_acc", "trial_id": trial, "validation": {"scheme": "holdout"},
              "nni_parameters": {"lr": nni_lr or lr}}
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "val_acc": acc, "val_f1": f1}) + "\n"
                                                  for i, (acc, f1) in enumerate(scores)))
    if stopped:
        (folder / "stopped.json").write_text(json.dumps({"stopped": True, "signal": "SIGINT"}))


def earlier_experiment(root: Path) -> Path:
    exp = root / "Earlier1"
    earlier_run(exp, "a", 0.002, [(0.5, 0.4), (0.7, 0.6)], nni_lr=0.004)
    earlier_run(exp, "b", 0.003, [(0.6, 0.65), (0.55, 0.5)])
    earlier_run(exp, "c", 0.002, [(0.5, 0.5)], epochs=4)                    # did not finish
    earlier_run(exp, "d", 0.002, [(0.5, 0.5)], stopped=True)                # stopped by the assessor
    earlier_run(exp, "e", 0.002, [(0.9, 0.9)], task="mask")                 # another task
    earlier_run(exp, "f", 0.01, [(0.9, 0.9)])                               # outside the new lr range
    return exp


def test_finished_trials_are_imported_with_what_they_ran_and_their_final_result(tmp_path):
    warm = trial_data(earlier_experiment(tmp_path), SPACE, "python trial.py --metric val_f1")
    assert warm.data == [{"parameter": {"lr": 0.002, "batch_size": 16}, "value": 0.6},  # params.json, not NNI's
                         {"parameter": {"lr": 0.003, "batch_size": 16}, "value": 0.65}]  # the best epoch, val_f1
    assert warm.left_out == {"did not finish (no final result)": 2, "trained another task than multi": 1,
                             "have values outside the new search space": 1}


def test_nothing_to_import_is_one_line(tmp_path):
    exp = tmp_path / "Earlier2"
    earlier_run(exp, "d", 0.002, [(0.5, 0.5)], stopped=True)
    with pytest.raises(UserError, match="no finished trial fits the new search \\(1 did not finish"):
        trial_data(exp, SPACE, "python trial.py")


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_tuners_that_cannot_learn_from_imported_trials_are_refused(name):
    with pytest.raises(UserError, match=f"^--warm_start cannot seed {name}: .+"):
        check_tuner({"tuner": {"name": name}})


@pytest.mark.parametrize("config", ["config.yml", "config.asha.yml", "config.demo.yml"])
def test_the_shipped_tpe_configs_can_be_warm_started(config):
    check_tuner(load_config(ROOT / config))


@pytest.mark.parametrize("config", ["config.hyperband.yml", "config.bohb.yml", "config.pbt.yml"])
def test_the_shipped_budget_and_pbt_configs_are_refused(config):
    with pytest.raises(UserError, match="--warm_start cannot seed"):
        check_tuner(load_config(ROOT / config))


@pytest.mark.parametrize("value, spec, expected", [
    (16, SPACE["batch_size"], True), (24, SPACE["batch_size"], False), (0.0, {"_type": "choice", "_value": [0, 1]},
                                                                         True),
    (True, {"_type": "choice", "_value": [1, 2]}, False), (0.002, SPACE["lr"], True), (0.01, SPACE["lr"], False),
    (None, SPACE["lr"], False), ("x", SPACE["lr"], False)])
def test_what_fits_a_search_space(value, spec, expected):
    assert fits(value, spec) is expected


def test_a_refused_tuner_ends_in_one_line_and_starts_nothing(tmp_path):
    exp = earlier_experiment(tmp_path)
    done = subprocess.run([sys.executable, "-m", "harness.experiment", "--config", "config.hyperband.yml", "--cpu",
                           "--working_dir", str(tmp_path / "new"), "--warm_start", str(exp)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m harness.experiment: error: --warm_start cannot seed Hyperband: {REFUSED['Hyperband']}"]
    assert not list((tmp_path / "new").rglob("*.yml")) and not list((tmp_path / "new").glob("*/db"))


def test_a_warm_started_experiment_s_tpe_receives_the_earlier_trials(demo_dir, tmp_path):
    exp = earlier_experiment(tmp_path)
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    config = load_config(ROOT / "config.demo.yml")
    config.update(searchSpaceFile=str(space), trialConcurrency=1, trialCodeDirectory=str(ROOT))
    config["tuner"]["codeDirectory"] = str(ROOT)
    (tmp_path / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    done = subprocess.run(
        [sys.executable, "-m", "harness.experiment", "--config", str(tmp_path / "config.yml"), "--max_trials", "1",
         "--working_dir", str(tmp_path / "new"), "--data_dir", str(demo_dir), "--warm_start", str(exp), "--stop",
         "--", "--epochs", "1", "--img_size", "32", "--num_workers", "0", "--model", "resnet10t", "--metric",
         "val_f1"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"warm start: 2 finished trial(s) of {exp} imported into TPE (left out: " in done.stdout
    assert "2 did not finish (no final result)" in done.stdout
    [dispatcher_log] = [log for log in (tmp_path / "new").glob("*/log/dispatcher.log") if "_latest" not in str(log)]
    assert "Replayed 2 FINISHED trials" in dispatcher_log.read_text()  # NNI's TPE took them into its history
