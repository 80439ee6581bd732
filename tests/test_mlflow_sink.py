"""--mlflow_uri: a trial's records in a local MLflow store, read back with MLflow's own client."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="MLflow is optional: pip install -r requirements-dev.txt")
from mlflow.tracking import MlflowClient  # noqa: E402

from harness.outputs.mlflow_sink import FOLDER_TAG, MlflowSink, param_values  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "resnet10t", "--pretrained", "false", "--img_size", "32", "--batch_size", "8", "--lr", "0.003",
        "--num_workers", "0", "--epochs", "2", "--dump_threshold", "0", "--tensorboard", "false",
        "--checkpoint", "none", "--classification", "gender"]


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=f"file://{tmp_path / 'mlruns'}")


def test_a_trial_s_epochs_and_params_are_an_mlflow_run(demo_dir, tmp_path, client):
    output = tmp_path / "runs"
    done = subprocess.run([sys.executable, str(ROOT / "trial.py"), "--data_dir", str(demo_dir), "--output_dir",
                           str(output), *FAST, "--mlflow_uri", f"file://{tmp_path / 'mlruns'}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    [folder] = list((output / "standalone").iterdir())
    experiment = client.get_experiment_by_name("standalone")  # the NNI experiment id; 'standalone' outside NNI
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == folder.name and run.info.status == "FINISHED"
    assert run.data.tags[FOLDER_TAG] == str(folder.resolve())
    params = json.loads((folder / "params.json").read_text())
    assert run.data.params["lr"] == "0.003" and run.data.params["model"] == "resnet10t"
    assert run.data.params["heads"] == json.dumps(params["heads"], sort_keys=True)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for key in ("val_acc", "train_loss", "val_f1"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (r["epoch"], pytest.approx(r[key])) for r in records]
    assert "dumped" not in run.data.metrics and "epoch" not in run.data.metrics


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, client):
    folder = tmp_path / "Exp12345" / "multi_resnet18_16_focal_0.001_AbC12"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"classification": "multi", "epochs": 3, "lr": 0.001,
                                                    "experiment_id": "Exp12345", "argv": ["--lr", "0.001"]}))
    first = MlflowSink(f"file://{tmp_path / 'mlruns'}", folder)
    first.epoch({"epoch": 1, "val_acc": 0.5})
    first.end_if_open()  # the trial was stopped
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = MlflowSink(f"file://{tmp_path / 'mlruns'}", folder)
    again.epoch({"epoch": 2, "val_acc": 0.6, "dumped": True})
    again.close({"epoch": 2})
    assert again.run_id == first.run_id
    run = client.get_run(again.run_id)
    assert run.info.status == "FINISHED" and run.info.experiment_id == client.get_experiment_by_name(
        "Exp12345").experiment_id
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_acc")] == [(1, 0.5), (2, 0.6)]
    assert "argv" not in run.data.params and run.data.params["lr"] == "0.001"


def test_params_are_text_within_mlflow_s_limit():
    values = param_values({"lr": 0.001, "heads": {"mask": 3}, "class_names": ["x" * 7000], "argv": ["--lr"]})
    assert values["lr"] == "0.001" and values["heads"] == '{"mask": 3}' and len(values["class_names"]) == 6000
    assert "argv" not in values
