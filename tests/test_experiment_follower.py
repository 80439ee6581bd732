"""What python -m harness.experiment tells a user while and after an experiment runs (pure parts, and one real
experiment whose only trial NNI cancels)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import UserError
from harness.experiment.config import merge_flags, trial_data_dir, with_overrides
from harness.experiment.follower import describe, ensemble_hint, heartbeat, wait
from harness.experiment.logs import cancel_reasons, tuner_failure
from harness.experiment.nnictl import free_port
from harness.outputs.records import nni_metric
from harness.params import FLAG_TYPES

ROOT = Path(__file__).resolve().parents[1]


def test_flags_already_in_the_trial_command_are_replaced_not_doubled(tmp_path):
    config = {"trialCommand": "python trial.py --data_dir data/demo --output_dir nni_experiments --epochs 6",
              "experimentWorkingDirectory": "runs"}
    command = with_overrides(config, tmp_path, trial_args=["--data_dir", "/my data", "--lr", "0.1"])["trialCommand"]
    assert command == (f"python trial.py --data_dir '/my data' --output_dir {tmp_path / 'runs'} --epochs 6 "
                       f"--lr 0.1")
    assert merge_flags("python trial.py --pretrained true", ["--pretrained", "false", "--cache"]) == \
        "python trial.py --pretrained false --cache"


def test_no_metric_sent_to_nni_shadows_a_search_space_key():
    record = {"epoch": 3, "train_acc": 0.5, "val_acc": 0.6, "lr": 0.002, "seconds": 1.5, "dumped": True}
    metric = nni_metric(record, "val_acc", FLAG_TYPES)
    assert metric == {"default": 0.6, "epoch": 3, "train_acc": 0.5, "val_acc": 0.6, "epoch_lr": 0.002,
                      "seconds": 1.5}
    assert not set(metric) & set(FLAG_TYPES)


def test_a_cancelled_trial_is_described_with_nni_s_reason():
    log = ("[2026-12-02 10:00:00] INFO (NNIManager) Trial job XPId4 has been canceled because it is over max "
           "trial duration.\n[2026-12-02 10:00:01] INFO (NNIManager) something else\n"
           '[2026-12-06 06:03:26] INFO (NNIManager) cancelTrialJob: "AWguh"\n'  # the assessor's, as NNI 3.0 logs it
           "[2026-12-06 06:04:00] INFO (NNIManager) User cancelTrialJob: Qx0Zt\n"
           "[2026-12-06 06:05:00] INFO (NNIManager) cancelTrialJob: Bm3Ka\n")  # nnictl stop: no reason to give
    reasons = cancel_reasons(log)
    assert reasons == {"XPId4": "over max trial duration", "AWguh": "stopped by the assessor",
                       "Qx0Zt": "cancelled from the web UI"}
    trial = {"trialJobId": "XPId4", "status": "USER_CANCELED",
             "hyperParameters": [json.dumps({"parameters": {"model": "resnet10t"}})]}
    assert describe(trial, reasons["XPId4"]) == "trial XPId4 USER_CANCELED (over max trial duration): model=resnet10t"
    assert "web UI or nnictl" in describe(trial)


def test_a_trial_is_described_with_the_parameters_it_ran(tmp_path):
    """NNI 3.0 can hand two trials started together each other's sets; its record then names the other trial's."""
    from harness.experiment.follower import ran_parameters

    run = tmp_path / "exp" / "gender_resnet10t_32_f1_0.003_w3Nc4"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"classification": "gender", "epochs": 2,
                                                 "nni_parameters": {"model": "resnet10t", "lr": 0.003}}))
    ran = ran_parameters(tmp_path / "exp", "w3Nc4")
    assert ran == {"model": "resnet10t", "lr": 0.003}
    assert ran_parameters(tmp_path / "exp", "other") is None and ran_parameters(None, "w3Nc4") is None
    swapped = {"trialJobId": "w3Nc4", "status": "SUCCEEDED",
               "hyperParameters": [json.dumps({"parameters": {"model": "resnet18", "lr": 0.001}})]}
    line = describe(swapped, ran=ran)
    assert line.startswith("trial w3Nc4 SUCCEEDED: model=resnet10t, lr=0.003 (NNI's web UI shows another")
    same = {**swapped, "hyperParameters": [json.dumps({"parameters": ran})]}
    assert describe(same, ran=ran) == "trial w3Nc4 SUCCEEDED: model=resnet10t, lr=0.003"
    assert describe(swapped) == "trial w3Nc4 SUCCEEDED: model=resnet18, lr=0.001"  # no run folder: NNI's record


def test_the_heartbeat_names_running_trials_their_epoch_and_metric():
    trials = [{"trialJobId": "A", "status": "RUNNING"}, {"trialJobId": "B", "status": "SUCCEEDED"},
              {"trialJobId": "C", "status": "WAITING"}]
    metrics = [{"trialJobId": "A", "type": "PERIODICAL", "data": json.dumps(json.dumps({"default": d}))}
               for d in (0.5, 0.625)]
    assert heartbeat(trials, metrics, 725) == "[12m05s] 1 running (A epoch 2, default 0.6250), 1 ended, 1 waiting"


def dumped_runs(experiment: Path, *classifications: str) -> list[Path]:
    """One run folder per classification, each with params.json and one eval soft CSV; returns the CSVs."""
    csvs = []
    for i, classification in enumerate(classifications):
        run = experiment / f"{classification}_resnet10t_{i}"
        run.mkdir(parents=True)
        (run / "params.json").write_text(json.dumps({"classification": classification, "epochs": 3}))
        csvs.append(run / "submission3_0.95_0.2_soft.csv")
    return csvs


def test_the_ensemble_hint_works_as_printed_or_says_why_there_is_none(demo_dir, tmp_path):
    exp = tmp_path / "exp"
    csvs = dumped_runs(exp, "multi", "gender")
    hint = ensemble_hint(exp, csvs, demo_dir)
    assert hint == (f"ensemble: python -m ensemble --from {exp} --select --info "
                    f"{demo_dir / 'eval' / 'info.csv'} -o submission.csv")
    assert "--info" not in ensemble_hint(exp, csvs, tmp_path / "no-eval")
    assert ensemble_hint(exp, [], demo_dir).startswith("no soft CSV was written")


@pytest.mark.parametrize("classifications, missing", [
    (("mask", "gender"), "age"), (("gender",), "mask or age"), (("mask", "gender", "age"), None),
    (("multihead",), None), (("age", "multihead"), None)])
def test_the_ensemble_hint_names_the_tasks_no_run_dumped(tmp_path, classifications, missing):
    """The demo's first four trials can leave dumps of mask and gender only: the command printed would fail with
    "no predictions for task 'age'", so the hint says what is missing instead (the ensemble's own rule)."""
    hint = ensemble_hint(tmp_path / "exp", dumped_runs(tmp_path / "exp", *classifications), None)
    if missing is None:
        assert hint.startswith("ensemble: python -m ensemble")
    else:
        assert hint.startswith("nothing to ensemble into a submission yet") and f"no run dumped {missing} " in hint
    assert trial_data_dir("python trial.py --data_dir a --epochs 2 --data_dir 'b c'") == Path("b c")


def test_a_trial_nni_cancels_is_explained_and_the_run_exits_non_zero(demo_dir, tmp_path):
    config = yaml.safe_load((ROOT / "config.demo.yml").read_text())
    config.update(searchSpaceFile=str(ROOT / "search_space.demo.json"), trialCodeDirectory=str(ROOT),
                  maxTrialDuration="1s", maxTrialNumber=1)
    config["tuner"]["codeDirectory"] = str(ROOT)  # harness.experiment.tuners.TPE, imported from the checkout
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "harness.experiment", "--config", str(path), "--working_dir", str(tmp_path / "exp"),
         "--port", str(free_port()), "--stop", "--timeout", "300", "--",
         "--data_dir", str(demo_dir), "--epochs", "50", "--img_size", "32", "--num_workers", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "USER_CANCELED (over max trial duration)" in done.stdout, done.stdout
    assert "0 trial(s) succeeded" in done.stdout and "no trial succeeded" in done.stderr
    assert "pkg_resources is deprecated" not in done.stdout + done.stderr


def test_the_experiment_starts_while_every_core_is_busy(demo_dir, tmp_path):
    """NNI's own launcher gives its web server 3 s; harness.experiment.nnictl lets it take what a loaded machine
    needs."""
    from harness.experiment.config import load_config
    from harness.experiment.nnictl import start, stop

    config = with_overrides(load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "exp", max_trials=1,
                            trial_args=["--data_dir", str(demo_dir), "--epochs", "1", "--img_size", "32"])
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(6)]
    experiment_id = None
    try:
        experiment_id = start(path, free_port())
    finally:
        for burner in burners:
            burner.kill()
        if experiment_id:
            stop(experiment_id)
    assert experiment_id


def test_a_failed_start_removes_the_experiment_folder_it_made(tmp_path, monkeypatch, capsys):
    import pytest

    from harness.errors import UserError
    from harness.experiment import __main__ as driver

    working = tmp_path / "exp"
    (working / "old-experiment").mkdir(parents=True)
    (working / "old-experiment" / "keep.txt").write_text("an earlier experiment's")

    def failing_start(config_path, port):
        (working / "Ab12cd34" / "log").mkdir(parents=True)  # what nnictl leaves when its web server never answers
        raise UserError("nnictl create --config x failed: ConnectionError on /check-status")

    monkeypatch.setattr(driver, "start", failing_start)
    with pytest.raises(UserError, match="ConnectionError"):
        driver.main(["--config", str(ROOT / "config.demo.yml"), "--working_dir", str(working)])
    assert sorted(p.name for p in working.iterdir()) == [".configs", "old-experiment"]
    assert not list((working / ".configs").iterdir()), "the staged config of the failed start was left"
    assert (working / "old-experiment" / "keep.txt").exists()
    assert "removed" in capsys.readouterr().err


# The end of NNI 3.0's dispatcher.log after its TPE met two trials that swapped parameter sets (harness/tuners.py).
DEAD_TUNER_LOG = """[2026-12-06 03:03:18] INFO (nni.runtime.msg_dispatcher_base/MainThread) Dispatcher started
[2026-12-06 03:04:00] ERROR (nni.runtime.msg_dispatcher_base/Thread-1 (command_queue_worker)) 0
Traceback (most recent call last):
  File "nni/algorithms/hpo/tpe_tuner.py", line 197, in receive_trial_result
    params = self._running_params.pop(parameter_id)
KeyError: 0
[2026-12-06 03:04:00] INFO (nni.runtime.msg_dispatcher_base/MainThread) Dispatcher exiting...
[2026-12-06 03:04:00] INFO (nni.runtime.msg_dispatcher_base/MainThread) Dispatcher terminiated
"""


class FrozenExperiment:
    """NNI's REST answers for an experiment whose tuner died: RUNNING for ever, every trial ended."""

    def status(self):
        return {"status": "RUNNING"}

    def trials(self):
        return [{"trialJobId": "A", "status": "SUCCEEDED", "hyperParameters": []}]

    def metrics(self):
        return []


def test_an_experiment_whose_tuner_died_ends_the_wait_with_the_tuner_s_error(tmp_path):
    assert tuner_failure(DEAD_TUNER_LOG) == "KeyError: 0"
    assert tuner_failure(DEAD_TUNER_LOG.split("[2026-12-06 03:04:00] ERROR")[0]) is None  # still running
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "dispatcher.log").write_text(DEAD_TUNER_LOG)
    with pytest.raises(UserError, match=r"NNI's tuner stopped with KeyError: 0 \(.*dispatcher.log\): no further trial"):
        wait(FrozenExperiment(), timeout=60, poll=0.01, echo=lambda line: None,
             manager_log=log_dir / "nnimanager.log")


def test_a_tuner_whose_worker_died_is_dead_before_its_process_exits():
    """NNI's dispatcher logs the exception that ends its command worker at once, but exits only at the manager's
    next command, which never comes when every trial has ended (seen: PBT's IndexError after failed trials)."""
    worker_died = DEAD_TUNER_LOG.split("[2026-12-06 03:04:00] INFO")[0]
    assert tuner_failure(worker_died) == "KeyError: 0"
    assert tuner_failure(worker_died.replace("msg_dispatcher_base/Thread-1", "pbt_tuner/Thread-1")) is None


def test_a_resumed_experiment_s_earlier_dispatcher_exit_is_not_a_dead_tuner():
    resumed = DEAD_TUNER_LOG + ("[2026-12-06 04:00:00] INFO (nni.runtime.msg_dispatcher_base/MainThread) "
                                "Dispatcher started\n")
    assert tuner_failure(resumed) is None


# The end states, as NNI 3.0's manager sets them (harness/experiment/ending.py).
ENDED = [{"trialJobId": "A", "status": "SUCCEEDED"}, {"trialJobId": "B", "status": "USER_CANCELED"}]
RUNNING = [{"trialJobId": "A", "status": "SUCCEEDED"}, {"trialJobId": "B", "status": "RUNNING"}]


@pytest.mark.parametrize("polls, final", [
    # (seconds, status, trials) per poll -> what the follower returns at the last one (None: it keeps following)
    ([(0, "DONE", ENDED)], "DONE"),
    ([(0, "DONE", RUNNING)], None),  # the trials were read before the last one's end was stored
    ([(0, "ERROR", RUNNING)], "ERROR"),
    # the moment between the manager storing the last trial's end and setting DONE (the flake in issue 22)
    ([(0, "NO_MORE_TRIAL", ENDED)], None),
    ([(0, "NO_MORE_TRIAL", ENDED), (0.5, "DONE", ENDED)], "DONE"),
    ([(0, "NO_MORE_TRIAL", ENDED), (61, "NO_MORE_TRIAL", ENDED)], "NO_MORE_TRIAL"),  # bounded
    # PBT between generations: its next set waits in the manager's queue, not yet listed
    ([(0, "TUNER_NO_MORE_TRIAL", ENDED), (5, "TUNER_NO_MORE_TRIAL", ENDED)], None),
    ([(0, "TUNER_NO_MORE_TRIAL", ENDED[:1]), (9, "TUNER_NO_MORE_TRIAL", ENDED), (12, "TUNER_NO_MORE_TRIAL", ENDED)],
     None),  # a new trial starts the wait again
    ([(0, "TUNER_NO_MORE_TRIAL", ENDED), (6, "RUNNING", RUNNING), (8, "TUNER_NO_MORE_TRIAL", ENDED),
      (12, "TUNER_NO_MORE_TRIAL", ENDED)], None),
    ([(0, "TUNER_NO_MORE_TRIAL", ENDED), (10.5, "TUNER_NO_MORE_TRIAL", ENDED)], "TUNER_NO_MORE_TRIAL"),  # grid search
    ([(0, "RUNNING", ENDED), (100, "RUNNING", ENDED)], None),
])
def test_the_follower_ends_on_the_state_nni_really_ends_in(polls, final):
    from harness.experiment.ending import Ending

    ending = Ending()
    answers = [ending.final(status, trials, now) for now, status, trials in polls]
    assert answers[-1] == final and all(answer is None for answer in answers[:-1])


class ScriptedExperiment:
    """NNI's REST answers replayed in order (the last repeats); records which endpoint was read when."""

    def __init__(self, answers: list[tuple[str, list[dict]]]) -> None:
        self.answers, self.reads = answers, []

    def status(self):
        self.reads.append("status")
        return {"status": self.answers[min(self.reads.count("status"), len(self.answers)) - 1][0]}

    def trials(self):
        self.reads.append("trials")
        return self.answers[min(self.reads.count("trials"), len(self.answers)) - 1][1]

    def metrics(self):
        return []


def test_the_follower_reads_the_trials_before_the_status_and_waits_for_done():
    rest = ScriptedExperiment([("NO_MORE_TRIAL", RUNNING), ("NO_MORE_TRIAL", ENDED), ("NO_MORE_TRIAL", ENDED),
                               ("DONE", ENDED)])
    lines = []
    assert wait(rest, timeout=30, poll=0.01, echo=lines.append) == "DONE"
    assert rest.reads[:2] == ["trials", "status"] and rest.reads.count("status") == 4
    assert len([line for line in lines if line.startswith("trial ")]) == 2


# NNI 3.0's nnimanager.log when a trial waits for ever: lines as the manager writes them (/tmp/nni22 research).
STALLED_LOG = """[2026-12-06 15:43:31] INFO (NNIManager) Change NNIManager status from: INITIALIZED to: RUNNING
[2026-12-06 15:43:31] INFO (NNIManager) submitTrialJob: form: {
  sequenceId: 0,
  hyperParameters: { value: '{"parameter_id": 0, "parameters": {"x": 0}}', index: 0 }
}
[2026-12-06 15:43:32] INFO (LocalV3.local) Created trial MaLcw
[2026-12-06 15:43:33] ERROR (TrainingServiceCompat) No parameters available
[2026-12-06 15:44:31] INFO (NNIManager) submitTrialJob: form: {
  sequenceId: 1,
  hyperParameters: { value: '{"parameter_id": 1, "parameters": {"x": 1}}', index: 0 }
}
[2026-12-06 15:44:32] ERROR (TaskScheduler) Only have 1 GPUs, requesting 1
[2026-12-06 15:44:32] INFO (TrialKeeper.local-env) Scheduling failed because the GPU constraint cannot be satisfied
[2026-12-06 15:44:32] WARNING (LocalV3.local) Failed to create trial
[2026-12-06 15:44:42] ERROR (TaskScheduler) Only have 1 GPUs, requesting 1
[2026-12-06 15:45:00] WARNING (WsConnection.__default__) Missing pong
"""


def test_the_stall_evidence_names_what_nni_s_logs_say():
    from harness.experiment.logs import stall_evidence

    found = stall_evidence(STALLED_LOG, DEAD_TUNER_LOG)
    text = "\n".join(found)
    assert "No parameters available (a trial asked for a parameter set and none was queued" in text
    assert "Only have 1 GPUs, requesting 1 (NNI's GPU scheduler refuses the trial" in text and "2 such lines" in text
    assert "Failed to create trial" in text and "Missing pong" in text
    assert "with no 'Created trial' after it" in text
    assert "dispatcher.log: the tuner process ended with KeyError: 0" in text
    assert found[-1].endswith("Change NNIManager status from: INITIALIZED to: RUNNING")
    assert stall_evidence("", "") == []


@pytest.mark.parametrize("trials, log, stalled", [
    ([{"trialJobId": "A", "status": "SUCCEEDED"}, {"trialJobId": "B", "status": "WAITING"}], "", True),
    ([{"trialJobId": "A", "status": "RUNNING"}], STALLED_LOG, True),  # running in name only: no set came
    ([{"trialJobId": "A", "status": "RUNNING"}], "", False),  # a long epoch is not a stall
])
def test_the_follower_says_when_no_trial_has_run_and_what_nni_s_logs_say(tmp_path, trials, log, stalled):
    from harness.experiment.follower import Follower

    (tmp_path / "nnimanager.log").write_text(log)
    lines = []
    rest = ScriptedExperiment([("RUNNING", trials)])
    follower = Follower(rest, lines.append, manager_log=tmp_path / "nnimanager.log", poll=0.01, stall_after=0.2)
    with pytest.raises(UserError, match="did not finish within"):
        follower.wait(1.0)
    said = [line for line in lines if line.startswith("the experiment looks stalled")]
    assert len(said) == int(stalled), lines
    if stalled and log:
        assert "No parameters available" in said[0]
    elif stalled:
        assert "nothing in nnimanager.log or dispatcher.log explains it" in said[0]
