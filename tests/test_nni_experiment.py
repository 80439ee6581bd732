"""A real NNI experiment: nnictl create with the CPU demo config, followed through NNI's REST API."""
import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.experiment.config import load_config, with_overrides
from harness.experiment.follower import wait
from harness.experiment.logs import ASSESSOR_STOP, cancel_reasons
from harness.experiment.nnictl import free_port, nnictl, nnictl_env, start, stop
from harness.experiment.rest import NniRest
from trial_checks import check_run_folder, run_to_end

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
# One small model and task: a trial that must still be training when a stop reaches it (nnictl stop takes 3 s or
# more, the assessor a second or two) trains 40 epochs of 0.3 s (bf16 on a CPU with bf16 units) to 1 s (fp32, AVX2).
ONE_TRIAL_SPACE = {"model": {"_type": "choice", "_value": ["resnet10t"]},
                   "batch_size": {"_type": "choice", "_value": [32]},
                   "criterion": {"_type": "choice", "_value": ["cross_entropy"]},
                   "classification": {"_type": "choice", "_value": ["gender"]}}
LONG_EPOCHS = 40


def one_long_trial(demo_dir: Path, tmp_path: Path, checkpoint: str) -> dict:
    config = with_overrides(
        load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "experiments", max_trials=1,
        trial_args=["--data_dir", str(demo_dir), "--epochs", str(LONG_EPOCHS), "--img_size", "32",
                    "--num_workers", "0", "--checkpoint", checkpoint])
    (tmp_path / "space.json").write_text(json.dumps(ONE_TRIAL_SPACE))
    config["searchSpaceFile"] = str(tmp_path / "space.json")
    config["trialConcurrency"] = 1  # one trial: a second request would find the one-value space exhausted
    return config


def test_with_overrides_makes_paths_absolute_and_appends_trial_flags(tmp_path):
    config = {"searchSpaceFile": "space.json", "trialCodeDirectory": ".", "trialCommand": "python trial.py --x 1",
              "experimentWorkingDirectory": "runs", "assessor": {"name": "Medianstop"}, "maxTrialNumber": 50}
    result = with_overrides(config, tmp_path, trial_args=["--epochs", "2", "--data_dir", "my data"], max_trials=3,
                            drop_assessor=True)
    assert result["searchSpaceFile"] == str(tmp_path / "space.json")
    assert result["trialCodeDirectory"] == str(tmp_path)
    assert result["trialCommand"] == (f"python trial.py --x 1 --output_dir {tmp_path / 'runs'} --epochs 2 "
                                      f"--data_dir 'my data'")
    assert result["maxTrialNumber"] == 3 and "assessor" not in result
    assert config["maxTrialNumber"] == 50  # the original is left alone


@pytest.mark.parametrize("name", ["config.yml", "config.demo.yml", "config.hyperband.yml", "config.bohb.yml",
                                  "config.pbt.yml"])
def test_shipped_configs_are_valid_nni_configs(name):
    from nni.experiment.config import ExperimentConfig

    config = load_config(ROOT / name)
    checked = ExperimentConfig(**with_overrides(config, ROOT))
    checked.validate()
    assert config["tuner"]["classArgs"]["optimize_mode"] == "maximize"
    assert json.loads((ROOT / config["searchSpaceFile"]).read_text())
    if "className" in config["tuner"]:  # a custom tuner: importable from its codeDirectory
        import importlib

        module, name_ = config["tuner"]["className"].rsplit(".", 1)
        assert getattr(importlib.import_module(module), name_)
    if name != "config.demo.yml":
        assert "trialGpuNumber" not in with_overrides(config, ROOT, cpu=True)
    if name == "config.yml":
        assert config["trialGpuNumber"] == 1 and config["trainingService"]["useActiveGpu"] is True
        assert config["assessor"]["className"] == "harness.experiment.assessors.Medianstop"
    elif name == "config.demo.yml":
        assert "trialGpuNumber" not in config  # a CPU machine has no NVML


def test_nnictl_runs_the_cpu_demo_experiment_to_the_end(demo_dir, tmp_path):
    config = with_overrides(
        load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "experiments", max_trials=2,
        trial_args=["--data_dir", str(demo_dir), "--epochs", str(EPOCHS), "--img_size", "32", "--num_workers", "0",
                    "--dump_threshold", "0"])
    experiment_id, status, trials, metrics = run_to_end(config, tmp_path)
    assert status == "DONE"

    assert len(trials) == 2
    assert [t["status"] for t in trials] == ["SUCCEEDED", "SUCCEEDED"]
    for trial in trials:
        mine = [m for m in metrics if m["trialJobId"] == trial["trialJobId"]]
        periodical = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "PERIODICAL"]
        final = [json.loads(json.loads(m["data"])) for m in mine if m["type"] == "FINAL"]
        assert len(periodical) == EPOCHS and len(final) == 1
        assert all({"default", "train_loss", "val_acc", "val_f1", "epoch_lr"} <= set(p) for p in periodical)
        assert not any("lr" in p for p in periodical + final), "a metric key shadows the searched lr"
        assert final[0]["default"] == max(p["default"] for p in periodical)

        run = next((tmp_path / "experiments" / experiment_id).glob(f"*_{trial['trialJobId']}"))
        params = check_run_folder(run, demo_dir, epochs=EPOCHS)
        tuned = params["nni_parameters"]
        assert {k: params[k] for k in tuned} == pytest.approx(tuned), "NNI's values override the flags"
        # The two trials ran side by side (config.demo.yml): NNI may have handed each the set it meant for the
        # other; each trained the set NNI's record names for it, and reported under that set's id.
        record = json.loads(trial["hyperParameters"][0])
        assert (params["nni_parameter_set"], tuned) == (record["parameter_id"], record["parameters"])
        assert params["nni_handout"]["recorded"]["parameter_id"] == record["parameter_id"]
        assert {m["parameterId"] for m in mine} == {str(record["parameter_id"])}
        assert params["experiment_id"] == experiment_id
        button = tmp_path / "experiments" / experiment_id / "trials" / trial["trialJobId"] / "output" / "tensorboard"
        assert list(button.glob("events.out.tfevents.*")), "the web UI's TensorBoard button finds the trial's logs"
        submissions = list(run.glob("submission*_soft.csv"))
        assert submissions, "dump threshold 0: the first epoch dumps"
        assert pd.read_csv(submissions[0]).shape[1] == 1 + params["num_classes"]


def test_nnictl_stop_then_resume_continues_the_trial_from_its_checkpoint(demo_dir, tmp_path):
    """NNI 3.0's local service stops a trial with SIGINT (SIGKILL 5 s later): the trial records the stop and keeps
    last.pt; `nnictl resume` runs it again under the same trial id, so it continues after its last epoch."""
    epochs = LONG_EPOCHS
    config = one_long_trial(demo_dir, tmp_path, checkpoint="last")
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    experiment_id = start(config_path, port)
    folder = tmp_path / "experiments" / experiment_id
    try:
        deadline = time.monotonic() + 600
        while not any(m.read_text().strip() for m in folder.glob("*/metrics.jsonl")):
            assert time.monotonic() < deadline, "no epoch within 10 minutes"
            time.sleep(0.5)
        before_stop = len(next(folder.glob("*/metrics.jsonl")).read_text().splitlines())
        stop(experiment_id)
        run = next(folder.glob("*/metrics.jsonl")).parent
        stopped = json.loads((run / "stopped.json").read_text())
        assert stopped["signal"] == "SIGINT" and stopped["checkpoint"] == "last.pt"
        assert stopped["stopped_by"] is None, "nnictl stop is not the assessor"
        assert stopped["last_completed_epoch"] < epochs, "stopped after the last epoch: the test proves nothing"
        assert (run / "last.pt").is_file()
        resumed = subprocess.run([nnictl(), "resume", experiment_id, "--port", str(port)], capture_output=True,
                                 text=True, env=nnictl_env())
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        rest = NniRest(port)
        assert wait(rest, timeout=900, echo=lambda line: None) == "DONE"
        trials, metrics = rest.trials(), rest.metrics()
    finally:
        stop(experiment_id)
    assert [t["status"] for t in trials] == ["SUCCEEDED"]
    assert run.name.endswith(trials[0]["trialJobId"]), "the resumed trial is the same trial, in the same folder"
    handout = json.loads((run / "params.json").read_text())["nni_handout"]
    assert handout["received"]["parameter_source"] == "resumed", "nnictl resume hands the trial its own set"
    assert handout["differed"] is False and handout["recorded"]["parameter_id"] == handout["received"]["parameter_id"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, epochs + 1)), "one line per epoch"
    assert not (run / "stopped.json").exists()
    for stderr in folder.glob("environments/*/trials/*/trial.stderr"):  # a report the stopping manager refused
        assert "Traceback" not in stderr.read_text(), stderr.read_text()[-3000:]
    reported = [json.loads(json.loads(m["data"]))["epoch"] for m in metrics if m["type"] == "PERIODICAL"]
    assert len(reported) == len(set(reported)), "NNI holds each epoch at most once"
    # The epochs that ended while nnictl stop had already closed NNI's REST server (3 s before it signals the trial,
    # longer on a loaded machine) are in the run folder but not in NNI (the trial logs a warning for each): at most
    # the epochs from the one in flight when the stop began to the last one before the signal. Every epoch before
    # that, and every epoch of the resumed run, reached NNI once.
    last = stopped["last_completed_epoch"]
    missing = set(range(1, epochs + 1)) - set(reported)
    assert missing <= set(range(before_stop, last + 1)), (before_stop, last, sorted(missing))
    assert not missing or missing == set(range(min(missing), last + 1)), "only the stop's last epochs may be missing"


def test_a_trial_the_assessor_stops_is_cancelled_not_failed(demo_dir, tmp_path):
    """NNI 3.0 makes a trial FAILED when it exits with any status but 0 (README: Stopping): the trial records its
    stop, keeps its checkpoint, and ends by the assessor's signal. NNI 3.0's local service then shows it as
    USER_CANCELED (its EARLY_STOPPED comes too late: docs/nni-traps.md); the assessor's own record
    (harness.experiment.assessors.RecordedStops) lets the trial's stopped.json name it, and nnimanager.log too."""
    config = one_long_trial(demo_dir, tmp_path, checkpoint="best")
    config["assessor"] = {"codeDirectory": str(ROOT / "tests"), "className": "stop_assessor.StopAtFirstResult"}
    experiment_id, status, trials, metrics = run_to_end(config, tmp_path)
    assert status == "DONE"
    assert [t["status"] for t in trials] == ["USER_CANCELED"]
    manager_log = (tmp_path / "experiments" / experiment_id / "log" / "nnimanager.log").read_text()
    assert cancel_reasons(manager_log) == {trials[0]["trialJobId"]: ASSESSOR_STOP}
    run = next((tmp_path / "experiments" / experiment_id).glob(f"*_{trials[0]['trialJobId']}"))
    stopped = json.loads((run / "stopped.json").read_text())
    assert stopped["signal"] == "SIGINT" and 1 <= stopped["last_completed_epoch"] < LONG_EPOCHS
    assert stopped["stopped_by"] == "assessor" and stopped["assessor"]["step"] >= 1
    assert stopped["checkpoint"] is None and (run / "best.pt").is_file()
    assert [m for m in metrics if m["type"] == "PERIODICAL"], "its epochs reached NNI"
    assert not [m for m in metrics if m["type"] == "FINAL"], "NNI takes no final result from a stopped trial"
