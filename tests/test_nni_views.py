"""What NNI shows is what ran (issue 22), on real experiments: for every trial, NNI's REST record, `nnictl experiment
export`, the metric rows' parameter ids and params.json name the same parameter set, and every assessor stop is
named as one by the trial's stopped.json, the follower and the report. Before the trials adopted NNI's record, the
same 12-trial run had 3 trials whose REST record and export named another trial's set (docs/nni-traps.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.experiment.config import load_config, with_overrides
from harness.experiment.logs import ASSESSOR_STOP, cancel_reasons
from harness.experiment.rest import parameter_record
from harness.experiment.stops import STOPS_FILE, read_stops
from harness.outputs.reading import find_run_of_trial
from harness.report.runs import read_experiment, status
from trial_checks import Finished, follow_to_end

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "resnet10t", "--img_size", "32", "--num_workers", "0", "--pretrained", "false", "--cache", "false",
        "--cpu_threads", "1", "--classification", "mask", "--criterion", "cross_entropy", "--batch_size", "32",
        "--dump_threshold", "1", "--checkpoint", "none"]
# Every set is unique (weight_decay is drawn from a range), so a set run by the wrong trial shows; lr 1e-7 learns
# nothing, so Medianstop has trials to stop.
SPACE = {"lr": {"_type": "choice", "_value": [3e-3, 1e-3, 1e-7]},
         "weight_decay": {"_type": "loguniform", "_value": [1e-6, 1e-4]}}
# TPE's first 12 draws with this seed put lr 1e-7 at trials 6, 9, 11 and 12 (its first 20 are random, whatever the
# results): each starts once good trials have finished, so Medianstop's median (of finished trials) is a good one.
TPE_SEED = 6


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        first[k] == second[k] or (isinstance(first[k], float) and isinstance(second[k], float)
                                  and math.isclose(first[k], second[k], rel_tol=1e-12)) for k in first)


def mismatches(experiment: Path, finished: Finished) -> list[str]:
    """One line per view of a trial that names another parameter set than the one its params.json says it ran."""
    found = []
    ran = {}
    for trial in finished.trials:
        trial_id, record = trial["trialJobId"], parameter_record(trial)
        run = find_run_of_trial(experiment, trial_id)
        assert run is not None, f"trial {trial_id} ({trial['status']}) left no run folder"
        ran[trial_id] = run.params["nni_parameters"]
        if not same(record["parameters"], ran[trial_id]) or record["parameter_id"] != run.params["nni_parameter_set"]:
            found.append(f"{trial_id}: REST record {record} vs params.json {run.params['nni_handout']}")
        reported = {str(m.get("parameterId")) for m in finished.metrics if m["trialJobId"] == trial_id}
        if reported - {str(record["parameter_id"])}:
            found.append(f"{trial_id}: results reported under {reported}, recorded {record['parameter_id']}")
    for row in finished.export:
        if not same(row["parameter"], ran[row["trialJobId"]]):
            found.append(f"{row['trialJobId']}: export {row['parameter']} vs params.json {ran[row['trialJobId']]}")
    return found


def experiment_config(name: str, demo_dir: Path, tmp_path: Path, trials: int, concurrency: int,
                      trial_args: list[str]) -> dict:
    config = with_overrides(load_config(ROOT / name), ROOT, working_dir=tmp_path / "exp", max_trials=trials,
                            trial_args=["--data_dir", str(demo_dir), *TINY, *trial_args], cpu=True)
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    config["searchSpaceFile"] = str(tmp_path / "space.json")
    config["trialConcurrency"] = concurrency
    return config


def test_tpe_with_medianstop_12_trials_4_at_once_every_view_names_what_ran(demo_dir, tmp_path):
    config = experiment_config("config.yml", demo_dir, tmp_path, 12, 4, ["--epochs", "2"])
    config["tuner"]["classArgs"]["seed"] = TPE_SEED
    config["assessor"]["classArgs"]["start_step"] = 1
    finished = follow_to_end(config, tmp_path, timeout=1200)
    experiment = tmp_path / "exp" / finished.experiment_id
    assert finished.status == "DONE" and len(finished.trials) == 12
    assert mismatches(experiment, finished) == []
    assert not [line for line in finished.lines if "another trial's parameters" in line], "the follower's check"
    assert len(finished.export) == sum(t["status"] == "SUCCEEDED" for t in finished.trials)

    # Every stop is the assessor's, and named as one everywhere.
    stopped = {t["trialJobId"] for t in finished.trials if t["status"] == "USER_CANCELED"}
    assert len(stopped) >= 2, [(t["trialJobId"], t["status"]) for t in finished.trials]
    log = (experiment / "log" / "nnimanager.log").read_text()
    killed = {trial for trial, reason in cancel_reasons(log).items() if reason == ASSESSOR_STOP}
    recorded = set(read_stops(experiment / "log" / STOPS_FILE))
    assert recorded == killed and stopped <= recorded
    status_of = {t["trialJobId"]: t["status"] for t in finished.trials}
    # A trial judged Bad at its last step may end before the signal reaches it: it ran to the end, no stop.
    assert all(status_of[trial] == "SUCCEEDED" for trial in recorded - stopped)
    report = {run.trial_id: status(run) for run in read_experiment(experiment).runs}
    for trial in stopped:
        run = find_run_of_trial(experiment, trial)
        assert run.stopped["stopped_by"] == "assessor" and run.stopped["signal"] == "SIGINT"
        assert report[trial].startswith("stopped by the assessor at epoch ")
        assert any(line.startswith(f"trial {trial} USER_CANCELED ({ASSESSOR_STOP}: Medianstop at step ")
                   for line in finished.lines), finished.lines


def test_hyperband_2_at_once_every_view_names_what_ran(demo_dir, tmp_path):
    """Hyperband's TRIAL_BUDGET and string ids ('0-1_0_0') are part of the set each trial must run as recorded."""
    config = experiment_config("config.hyperband.yml", demo_dir, tmp_path, 6, 2, [])
    config["tuner"]["classArgs"].update(R=2, eta=2, exec_mode="parallelism")
    finished = follow_to_end(config, tmp_path, timeout=900)
    experiment = tmp_path / "exp" / finished.experiment_id
    assert finished.status == "DONE" and len(finished.trials) == 6
    assert all(t["status"] == "SUCCEEDED" for t in finished.trials)
    assert mismatches(experiment, finished) == []
    assert not [line for line in finished.lines if "another trial's parameters" in line], "the follower's check"
    for trial in finished.trials:
        budget = parameter_record(trial)["parameters"]["TRIAL_BUDGET"]
        assert find_run_of_trial(experiment, trial["trialJobId"]).params["epochs"] == budget
    ids = {parameter_record(t)["parameter_id"] for t in finished.trials}
    assert len(ids) == 6 and all(isinstance(i, str) for i in ids)


@pytest.mark.parametrize("name", ["config.yml", "config.remote.yml"])
def test_the_shipped_assessor_is_medianstop_recording_its_stops(name):
    assessor = load_config(ROOT / name)["assessor"]
    assert assessor["className"] == "harness.experiment.assessors.Medianstop"
    assert assessor["classArgs"] == {"optimize_mode": "maximize", "start_step": 5}
