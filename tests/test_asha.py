"""ASHA: the promotion rule as a pure function over a sequence of reports, its record across `nnictl resume`, and
the assessor in real NNI experiments (the shipped config.asha.yml, and a stop it must make)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.experiment.config import load_config, with_overrides
from harness.experiment.follower import stop_reasons
from harness.experiment.rungs import Rungs, judge, read_rungs, rung_epochs
from harness.experiment.stops import STOPS_FILE, read_stops
from trial_checks import run_to_end

ROOT = Path(__file__).resolve().parents[1]


def replay(reports: list[tuple[str, list[float]]], eta: int = 3, epochs: tuple[int, ...] = (1, 3),
           grace_period: int = 1) -> dict[str, int | None]:
    """Feeds each (trial, its results so far) in order, as NNI calls the assessor; trial -> the rung that stopped
    it (None: never stopped)."""
    state = Rungs(eta, list(epochs), grace_period)
    stopped: dict[str, int | None] = {}
    for trial, history in reports:
        if stopped.get(trial) is not None:
            continue  # NNI sends nothing more of a stopped trial (it may, but it is already being killed)
        verdicts = state.advance(trial, history)
        stopped[trial] = verdicts[-1].rung if verdicts and not verdicts[-1].continues else None
    return stopped


def test_the_first_trial_at_a_rung_continues_and_the_worse_second_stops():
    assert replay([("a", [0.5]), ("b", [0.4])], eta=3) == {"a": None, "b": 1}


def test_a_better_later_trial_continues():
    assert replay([("a", [0.5]), ("b", [0.6])]) == {"a": None, "b": None}


def test_ties_go_to_the_newcomer():
    assert replay([("a", [0.5]), ("b", [0.5])]) == {"a": None, "b": None}


def test_the_top_third_continues_rounded_up():
    # Four trials at the rung: ceil(4 / 3) = 2 places continue; the fourth is 2nd, so it continues.
    reports = [("a", [0.9]), ("b", [0.3]), ("c", [0.5]), ("d", [0.6])]
    assert replay(reports) == {"a": None, "b": 1, "c": 1, "d": None}


def test_trials_are_judged_asynchronously_as_their_results_arrive():
    # b reaches rung 3 before a slow a does: judged against nobody there, it continues; a arrives later, worse.
    reports = [("a", [0.5]), ("b", [0.6]), ("b", [0.6, 0.7, 0.8]), ("a", [0.5, 0.55, 0.6])]
    assert replay(reports, eta=2) == {"a": 3, "b": None}


def test_the_score_at_a_rung_is_the_best_result_up_to_it():
    state = Rungs(3, [1, 3])
    state.advance("a", [0.5, 0.9, 0.6])
    assert state.recorded == {1: {"a": 0.5}, 3: {"a": 0.9}}


def test_a_history_that_jumps_past_rungs_is_judged_at_each_lowest_first():
    state = Rungs(2, [1, 2, 4])
    state.advance("a", [0.9, 0.9, 0.9, 0.9])
    verdicts = state.advance("b", [0.1, 0.2, 0.3, 0.4])
    assert [(v.rung, v.continues) for v in verdicts] == [(1, False)]  # stopped at its first rung: no later record
    assert state.recorded == {1: {"a": 0.9, "b": 0.1}, 2: {"a": 0.9}, 4: {"a": 0.9}}


def test_a_grace_period_spares_the_first_trials_at_each_rung():
    assert replay([("a", [0.5]), ("b", [0.4]), ("c", [0.3])], grace_period=2) == {"a": None, "b": None, "c": 1}


@pytest.mark.parametrize("score, earlier, continues", [(float("nan"), [0.1], False), (0.2, [float("-inf")], True)])
def test_nan_scores_as_the_worst(score, earlier, continues):
    assert judge("t", 1, score, earlier, 3, 1).continues is continues


@pytest.mark.parametrize("kwargs, expected", [
    ({"eta": 3, "min_resource": 1, "max_resource": 30}, [1, 3, 9, 27]),
    ({"eta": 3, "min_resource": 3, "max_resource": 30}, [3, 9, 27]),
    ({"eta": 2, "min_resource": 1, "max_resource": 4}, [1, 2]),
    ({"eta": 2, "rungs": [2, 5, 12]}, [2, 5, 12]),
])
def test_rung_epochs(kwargs, expected):
    assert rung_epochs(**kwargs) == expected


@pytest.mark.parametrize("kwargs, needle", [
    ({"eta": 1}, "eta is 1"), ({"eta": 3, "min_resource": 0}, "min_resource is 0"),
    ({"eta": 3, "min_resource": 3, "max_resource": 3}, "max_resource is 3"),
    ({"eta": 3, "rungs": [5, 2]}, "increasing"), ({"eta": 3, "rungs": []}, "increasing")])
def test_bad_rungs_are_one_line_errors(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        rung_epochs(**kwargs)


def test_the_record_survives_a_resume(tmp_path, monkeypatch):
    """`nnictl resume` starts a new assessor with NNI_MODE=resume and calls its load_checkpoint: later trials are
    judged against the trials recorded before the stop."""
    from harness.experiment.assessors import Asha

    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path / "checkpoint"))
    monkeypatch.setenv("NNI_LOG_DIRECTORY", str(tmp_path / "log"))
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "log").mkdir()
    before = Asha(eta=2, rungs=[1])
    assert before.assess_trial("a", [{"default": 0.8}]).name == "Good"
    after = Asha(eta=2, rungs=[1])
    after.load_checkpoint()
    assert after.assess_trial("b", [{"default": 0.7, "val_loss": 1.0}]).name == "Bad"
    assert read_rungs(tmp_path / "checkpoint").recorded == {1: {"a": 0.8, "b": 0.7}}
    # The stop in the record every assessor of the harness writes (harness/experiment/stops.py), its rung beside it
    assert read_stops(tmp_path / "log" / STOPS_FILE) == {"b": {
        "trial": "b", "step": 1, "assessor": "ASHA", "rung": 1, "score": 0.7, "place": 2, "of": 2, "kept": 1,
        "reason": "ASHA at the 1-epoch rung (after epoch 1): best default 0.7000, 2nd of 2 there (the top 1 continue)"}}


def test_a_record_of_other_rungs_is_not_resumed(tmp_path, monkeypatch):
    from harness.experiment.assessors import Asha

    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path))
    Asha(eta=2, rungs=[1]).assess_trial("a", [0.8])
    other = Asha(eta=2, rungs=[2])
    other.load_checkpoint()
    assert other.state.recorded == {}


def test_a_minimised_metric_stops_the_higher_one(tmp_path, monkeypatch):
    from harness.experiment.assessors import Asha

    monkeypatch.setenv("NNI_LOG_DIRECTORY", str(tmp_path))
    asha = Asha(optimize_mode="minimize", eta=2, rungs=[1])
    assert asha.assess_trial("a", [0.3]).name == "Good"
    assert asha.assess_trial("b", [0.5]).name == "Bad"
    assert read_stops(tmp_path / STOPS_FILE)["b"]["score"] == 0.5


def demo_trial_args(demo_dir: Path, epochs: int) -> list[str]:
    return ["--data_dir", str(demo_dir), "--epochs", str(epochs), "--img_size", "32", "--num_workers", "0",
            "--model", "resnet10t", "--pretrained", "false", "--cache", "false", "--classification", "mask",
            "--dump_threshold", "0"]


def test_the_shipped_asha_config_runs_to_the_end(demo_dir, tmp_path):
    config = with_overrides(load_config(ROOT / "config.asha.yml"), ROOT, working_dir=tmp_path / "exp",
                            max_trials=3, trial_args=demo_trial_args(demo_dir, 2), cpu=True)
    (tmp_path / "space.json").write_text(json.dumps({"lr": {"_type": "loguniform", "_value": [1e-3, 5e-3]}}))
    config.update(searchSpaceFile=str(tmp_path / "space.json"), trialConcurrency=1)
    config["assessor"]["classArgs"].update(min_resource=1, max_resource=2)  # one rung, after epoch 1
    experiment_id, status, trials, _ = run_to_end(config, tmp_path)
    assert status == "DONE" and len(trials) == 3
    record = read_rungs(tmp_path / "exp" / experiment_id / "checkpoint")
    assert record.epochs == [1] and set(record.recorded[1]) == {t["trialJobId"] for t in trials}
    stopped = {stop["trial"] for stop in record.stops}
    assert {t["trialJobId"] for t in trials if t["status"] == "USER_CANCELED"} <= stopped


def test_asha_stops_the_worse_trial_of_a_real_experiment(demo_dir, tmp_path):
    """NNI's BatchTuner runs the sets in order: a good learning rate for 2 epochs, then a hopeless one for 40. At
    the one rung (epoch 1) the hopeless trial is below the first and is stopped while it still trains."""
    config = with_overrides(load_config(ROOT / "config.asha.yml"), ROOT, working_dir=tmp_path / "exp",
                            max_trials=2, trial_args=demo_trial_args(demo_dir, 2), cpu=True)
    sets = [{"lr": 0.003, "epochs": 2}, {"lr": 1e-9, "epochs": 40}]
    (tmp_path / "space.json").write_text(json.dumps({"combine_params": {"_type": "choice", "_value": sets}}))
    config.update(searchSpaceFile=str(tmp_path / "space.json"), trialConcurrency=1, tuner={"name": "BatchTuner"})
    config["assessor"]["classArgs"] = {"optimize_mode": "maximize", "eta": 2, "rungs": [1]}
    experiment_id, status, trials, _ = run_to_end(config, tmp_path)
    assert status == "DONE"
    assert [t["status"] for t in trials] == ["SUCCEEDED", "USER_CANCELED"]
    experiment = tmp_path / "exp" / experiment_id
    [stop] = read_stops(experiment / "log" / STOPS_FILE).values()
    assert stop["trial"] == trials[1]["trialJobId"] and stop["rung"] == 1 and stop["place"] == 2
    run = next(experiment.glob(f"*_{trials[1]['trialJobId']}"))
    stopped = json.loads((run / "stopped.json").read_text())
    assert stopped["last_completed_epoch"] < 40 and stopped["stopped_by"] == "assessor"
    assert stopped["assessor"]["reason"] == stop["reason"]
    # The follower's line for the cancelled trial names ASHA's rung
    reasons = stop_reasons(experiment / "log" / "nnimanager.log")
    assert reasons[stop["trial"]] == f"stopped by the assessor: {stop['reason']}"
