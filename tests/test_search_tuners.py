"""The shipped Hyperband, BOHB and PBT configs, each run for real (tiny, CPU) through nnictl on the demo data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.experiment.config import load_config, with_overrides
from harness.experiment.tuners import created_in_previous_experiment
from trial_checks import run_to_end

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "resnet10t", "--img_size", "32", "--num_workers", "0", "--pretrained", "false",
        "--dump_threshold", "0", "--cache", "false"]
SPACE = {"lr": {"_type": "loguniform", "_value": [1e-3, 5e-3]},
         "batch_size": {"_type": "choice", "_value": [16, 32]}}


@pytest.mark.parametrize("param_id, recovered, previous", [
    ("0-1_0_0", -1, False), ("0-1_0_0", 5, False), (3, 5, True), (6, 5, False), (0, -1, False), (True, 5, False)])
def test_only_int_ids_can_come_from_a_resumed_experiment(param_id, recovered, previous):
    assert created_in_previous_experiment(param_id, recovered) is previous


SWAP_SPACE = {"lr": {"_type": "loguniform", "_value": [1e-3, 5e-3]}, "model": {"_type": "choice",
                                                                         "_value": ["resnet10t", "resnet18"]}}


@pytest.mark.parametrize("fixed", [False, True])
def test_tpe_survives_two_trials_that_swapped_their_parameter_sets(fixed):
    """NNI 3.0's local service can give the set the manager assigned to trial A (id 0) to trial B, and B's (id 1)
    to A. A ends first: its result comes with id 1, then NNI says the trial with id 0 ended. B's result, id 0,
    then crashes NNI's own TPE (the dispatcher dies and the experiment hangs); the fixed one records both."""
    from nni.algorithms.hpo.tpe_tuner import TpeTuner

    from harness.experiment.tuners import TPE

    tuner = (TPE if fixed else TpeTuner)(optimize_mode="maximize", seed=0)
    tuner.update_search_space(SWAP_SPACE)
    sets = [tuner.generate_parameters(parameter_id) for parameter_id in (0, 1)]
    tuner.receive_trial_result(1, sets[1], 0.8)  # trial A, which really ran set 1
    tuner.trial_end(0, True)  # NNI names the set it assigned to A
    if not fixed:
        with pytest.raises(KeyError):
            tuner.receive_trial_result(0, sets[0], 0.6)
        return
    tuner.receive_trial_result(0, sets[0], 0.6)  # trial B, which really ran set 0
    tuner.trial_end(1, True)
    assert sorted(record.loss for record in tuner._history[("lr",)]) == [-0.8, -0.6]  # TPE minimises -score
    assert tuner._running_params == {}
    assert tuner.generate_parameters(2)["model"] in ("resnet10t", "resnet18")


def run_experiment(config_name: str, tmp_path: Path, demo_dir: Path, class_args: dict, trials: int,
                   space: dict, trial_args: list[str]) -> tuple[list[dict], Path, str]:
    config = with_overrides(load_config(ROOT / config_name), ROOT, working_dir=tmp_path / "exp", max_trials=trials,
                            trial_args=["--data_dir", str(demo_dir), *TINY, *trial_args], cpu=True)
    (tmp_path / "space.json").write_text(json.dumps(space))
    config["searchSpaceFile"] = str(tmp_path / "space.json")
    config["tuner"]["classArgs"].update(class_args)
    config["trialConcurrency"] = 1
    experiment_id, status, found, _ = run_to_end(config, tmp_path)
    assert status == "DONE", (tmp_path / "exp" / experiment_id / "log" / "dispatcher.log").read_text()[-3000:]
    return found, tmp_path / "exp" / experiment_id, experiment_id


def parameters(trial: dict) -> dict:
    return json.loads(trial["hyperParameters"][0])["parameters"]


def run_of(experiment: Path, trial: dict) -> Path:
    return next(experiment.glob(f"*_{trial['trialJobId']}"))


def epochs_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("config_name, class_args", [
    ("config.hyperband.yml", {"R": 2, "eta": 2, "exec_mode": "serial"}),
    ("config.bohb.yml", {"min_budget": 1, "max_budget": 2, "eta": 2, "min_points_in_model": 3}),
])
def test_budget_tuner_runs_to_the_end_and_its_budget_sets_the_epochs(config_name, class_args, demo_dir, tmp_path):
    # R (max_budget) 2, eta 2: the first bracket runs two configurations for 1 epoch, then the better one for 2.
    found, experiment, _ = run_experiment(config_name, tmp_path, demo_dir, class_args, 3, SPACE, [])
    assert [t["status"] for t in found] == ["SUCCEEDED"] * 3
    budgets = [parameters(t)["TRIAL_BUDGET"] for t in found]
    assert budgets == [1, 1, 2]
    for trial, budget in zip(found, budgets, strict=True):
        assert [r["epoch"] for r in epochs_of(run_of(experiment, trial))] == list(range(1, budget + 1))
    if config_name == "config.hyperband.yml":  # successive halving: the promoted one is the better of the two
        first, second, promoted = found
        score = {t["trialJobId"]: max(r["val_acc"] for r in epochs_of(run_of(experiment, t))) for t in found}
        better = first if score[first["trialJobId"]] >= score[second["trialJobId"]] else second
        without_budget = {k: v for k, v in parameters(promoted).items() if k != "TRIAL_BUDGET"}
        assert without_budget == {k: v for k, v in parameters(better).items() if k != "TRIAL_BUDGET"}


def test_pbt_children_start_from_their_parents_weights(demo_dir, tmp_path):
    # Two members, two steps of one epoch each: the second step's trials load the first step's weights.
    found, experiment, _ = run_experiment(
        "config.pbt.yml", tmp_path, demo_dir, {"population_size": 2, "fraction": 0.5}, 4,
        {"lr": {"_type": "loguniform", "_value": [2e-3, 5e-3]}},
        ["--epochs", "1", "--model", "resnet10t", "--criterion", "cross_entropy", "--classification", "mask"])
    assert [t["status"] for t in found] == ["SUCCEEDED"] * 4
    first_step, second_step = found[:2], found[2:]
    for trial in first_step:
        assert not (run_of(experiment, trial) / "population.json").exists()  # a fresh start
        assert (Path(parameters(trial)["save_checkpoint_dir"]) / "member.pt").is_file()
    saved_by = {parameters(t)["save_checkpoint_dir"]: run_of(experiment, t) for t in first_step}
    for trial in second_step:
        chosen = parameters(trial)
        assert chosen["load_checkpoint_dir"] in saved_by, "a second-step trial starts from a first-step member"
        parent = saved_by[chosen["load_checkpoint_dir"]]
        inherited = json.loads((run_of(experiment, trial) / "population.json").read_text())
        assert Path(inherited["parent_run"]) == parent
        parents_last = epochs_of(parent)[-1]
        # Scored again here before any training: the parent's last validation numbers, to rounding. A freshly
        # initialised model (the seed is the same) would score its own loss, not the trained parent's.
        assert inherited["start"]["val_loss"] == pytest.approx(parents_last["val_loss"], rel=1e-4)
        assert inherited["start"]["val_acc"] == pytest.approx(parents_last["val_acc"])
        assert Path(chosen["save_checkpoint_dir"]).is_relative_to(experiment)
