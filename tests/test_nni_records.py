"""What NNI shows is what ran: a trial trains the parameter set NNI's manager records for it (harness/experiment/
runtime.py), and an assessor's stops are recorded as stops (harness/experiment/assessors.py, stops.py). Pure parts
against a fake manager; the real experiments are in test_nni_views.py."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.experiment import runtime
from harness.experiment.assessors import Medianstop
from harness.experiment.stops import STOPS_FILE, assessor_stop_of_this_trial, read_stops, record_stop

TRIAL = "AbC12"


def record(parameter_id, parameters: dict, source: str = "algorithm") -> dict:
    return {"parameter_id": parameter_id, "parameter_source": source, "parameters": parameters, "parameter_index": 0}


class FakeManager:
    """NNI's REST server as a trial sees it: GET /api/v1/nni/trial-jobs/<id> answers HTTP 200 with an empty body
    `empty` times (the manager writes its record just after it spawns the trial), then the record."""

    def __init__(self, hyper_parameters: list | None, empty: int = 0) -> None:
        self.hyper_parameters, self.empty, self.asked = hyper_parameters, empty, 0

    def answer(self, path: str) -> bytes:
        self.asked += 1
        if path != f"/api/v1/nni/trial-jobs/{TRIAL}" or self.asked <= self.empty or self.hyper_parameters is None:
            return b""
        return json.dumps({"trialJobId": TRIAL, "status": "RUNNING",
                           "hyperParameters": self.hyper_parameters}).encode()


@pytest.fixture
def manager(monkeypatch) -> Iterator[FakeManager]:
    fake = FakeManager(None)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = fake.answer(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("NNI_EXP_ID", "exp1")
    monkeypatch.setenv("NNI_PLATFORM", "local")
    monkeypatch.setenv("NNI_TRIAL_JOB_ID", TRIAL)
    monkeypatch.setenv("NNI_TRIAL_COMMAND_CHANNEL", f"http://127.0.0.1:{port}/env/local-env/{TRIAL}")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def handed_out(monkeypatch):
    """The set NNI's channel hands this trial: stands in for nni.get_next_parameter()."""
    import nni.trial

    def hand_out(found: dict | None) -> None:
        monkeypatch.setattr(nni.trial, "_params", found)
        monkeypatch.setattr(runtime, "received_set", lambda: found)
    return hand_out


def test_a_trial_handed_another_trials_set_trains_and_reports_the_one_nni_records(manager, handed_out, caplog):
    import nni.trial

    manager.hyper_parameters, manager.empty = [json.dumps(record(0, {"lr": 0.001, "model": "resnet10t"}))], 3
    handed_out(record(3, {"lr": 0.004, "model": "resnet18"}))
    with caplog.at_level(logging.WARNING):
        handout = runtime.next_parameters(within=10)
    assert handout.parameters == {"lr": 0.001, "model": "resnet10t"}
    assert nni.trial._params["parameter_id"] == 0, "its results are reported under the recorded set's id"
    assert runtime.parameter_set_id() == 0
    described = handout.describe()
    assert (described["received"]["parameter_id"], described["recorded"]["parameter_id"]) == (3, 0)
    assert described["differed"] is True and described["trained"] == "recorded"
    assert manager.asked == 4, "the empty answers were asked again"
    assert "another trial's" in caplog.text


def test_a_trial_re_run_by_nnictl_resume_keeps_its_own_set(manager, handed_out):
    """nnictl resume hands a re-run trial its own set with parameter_source 'resumed'; the record says
    'algorithm': the same set, so nothing is adopted."""
    import nni.trial

    own = {"lr": 0.002, "TRIAL_BUDGET": 2}
    manager.hyper_parameters = [json.dumps(record("0-1_0_0", own))]
    handed_out(record("0-1_0_0", own, source="resumed"))
    handout = runtime.next_parameters(within=5)
    assert handout.parameters == own and handout.differed is False
    assert nni.trial._params["parameter_source"] == "resumed"


@pytest.mark.parametrize("hyper_parameters, why", [
    (None, "no record of this trial yet"),
    (["not json"], "a record without a parameter set"),
    ([json.dumps({"parameter_id": 1, "parameters": "lr=0.1"})], "a record without a parameter set"),
])
def test_without_a_readable_record_the_trial_trains_the_set_it_received_and_says_so(manager, handed_out, caplog,
                                                                                   hyper_parameters, why):
    manager.hyper_parameters = hyper_parameters
    handed_out(record(2, {"lr": 0.003}))
    with caplog.at_level(logging.WARNING):
        handout = runtime.next_parameters(within=0.6)
    assert handout.parameters == {"lr": 0.003} and handout.recorded is None
    assert handout.describe()["differed"] is None and handout.describe()["trained"] == "received"
    assert why in handout.note and "could not be read" in caplog.text


@pytest.mark.parametrize("platform, channel, reachable", [
    ("local", "http://localhost:51143/env/local-env/MaLcw", "http://localhost:51143/api/v1/nni"),
    ("local", "http://localhost:8080/prefix/env/local-env/MaLcw", "http://localhost:8080/prefix/api/v1/nni"),
    ("remote", "http://127.0.0.1:40123/env/worker-1/MaLcw", None),  # reuseMode false: the machine's trial keeper
    ("remote", "", None),                                            # reuseMode true: no channel URL at all
    ("local", "import://some.module.Channel", None),
])
def test_only_the_local_services_channel_leads_to_the_manager(monkeypatch, platform, channel, reachable):
    monkeypatch.setenv("NNI_PLATFORM", platform)
    monkeypatch.setenv("NNI_TRIAL_COMMAND_CHANNEL", channel)
    rest, why = runtime.manager_api()
    assert (rest.base if rest else None) == reachable
    assert bool(why) == (reachable is None)


def test_in_reuse_mode_the_set_received_is_the_recorded_one(monkeypatch, handed_out, caplog):
    """Remote reuseMode true: NNI's trial runner sends each trial its own form's set (trialDispatcher.js)."""
    monkeypatch.setenv("NNI_EXP_ID", "exp1")
    monkeypatch.setenv("NNI_PLATFORM", "remote")
    monkeypatch.setenv("REUSE_MODE", "true")
    monkeypatch.delenv("NNI_TRIAL_COMMAND_CHANNEL", raising=False)
    handed_out(record(4, {"lr": 0.002}))
    with caplog.at_level(logging.WARNING):
        handout = runtime.next_parameters()
    assert handout.parameters == {"lr": 0.002} and "reuse mode" in handout.note and not caplog.text


def test_standalone_there_is_no_handout(monkeypatch):
    monkeypatch.delenv("NNI_EXP_ID", raising=False)
    assert runtime.next_parameters().parameters == {}


# The assessor's stops.

def test_the_stops_file_keeps_one_stop_per_trial_and_skips_what_is_not_a_stop(tmp_path):
    path = tmp_path / STOPS_FILE
    assert record_stop(path, "A", 3, "Medianstop at step 3") is True
    assert record_stop(path, "A", 4, "again") is False, "NNI asks again at each result a dying trial reports"
    with path.open("a") as handle:
        handle.write('{"trial": "B", "step": "x", "reason": 1}\nnot json\n')
    record_stop(path, "C", 1, "r")
    assert read_stops(path) == {"A": {"trial": "A", "step": 3, "reason": "Medianstop at step 3"},
                                "C": {"trial": "C", "step": 1, "reason": "r"}}
    assert read_stops(tmp_path / "absent.jsonl") == {} and read_stops(None) == {}


def finished(assessor: Medianstop, trial: str, history: list[float]) -> None:
    for step in range(1, len(history) + 1):
        assessor.assess_trial(trial, history[:step])
    assessor.trial_end(trial, True)


def test_medianstop_records_a_stop_before_it_answers_bad(tmp_path, monkeypatch):
    from nni.assessor import AssessResult

    monkeypatch.setenv("NNI_LOG_DIRECTORY", str(tmp_path))
    assessor = Medianstop(optimize_mode="maximize", start_step=2)
    finished(assessor, "good1", [0.6, 0.7, 0.8])
    finished(assessor, "good2", [0.5, 0.8, 0.9])
    assert assessor.assess_trial("early", [0.1]) is AssessResult.Good  # before start_step: not judged
    assert assessor.assess_trial("fine", [0.7, 0.75]) is AssessResult.Good
    assert assessor.assess_trial("poor", [0.2, 0.3]) is AssessResult.Bad
    stops = read_stops(tmp_path / STOPS_FILE)
    assert list(stops) == ["poor"] and stops["poor"]["step"] == 2
    # NNI's median (the lower when maximising) of the running averages at step 2: 0.65 and 0.65
    assert stops["poor"]["reason"] == ("Medianstop at step 2: best 0.3 below the median 0.65 of 2 finished "
                                       "trials' running averages")


def test_a_stopped_trial_finds_its_stop_through_nni_s_folders(tmp_path, monkeypatch):
    """A local trial's NNI_OUTPUT_DIR is <experiment>/environments/<env>/trials/<id>; the log is <experiment>/log."""
    experiment = tmp_path / "exp1"
    output = experiment / "environments" / "local-env" / "trials" / TRIAL
    output.mkdir(parents=True)
    (experiment / "log").mkdir()
    record_stop(experiment / "log" / STOPS_FILE, TRIAL, 2, "Medianstop at step 2")
    monkeypatch.setenv("NNI_OUTPUT_DIR", str(output))
    monkeypatch.setenv("NNI_EXP_ID", "exp1")
    monkeypatch.setenv("NNI_TRIAL_JOB_ID", TRIAL)
    assert assessor_stop_of_this_trial() == {"trial": TRIAL, "step": 2, "reason": "Medianstop at step 2"}
    monkeypatch.setenv("NNI_TRIAL_JOB_ID", "Other")
    assert assessor_stop_of_this_trial() is None
    monkeypatch.setenv("NNI_OUTPUT_DIR", str(tmp_path / "elsewhere"))
    assert assessor_stop_of_this_trial() is None


def test_stopped_json_says_who_stopped_the_trial(tmp_path):
    from harness.outputs.run_folder import RunFolder

    run = RunFolder(tmp_path, "exp1", "gender_resnet10t_32_cross_entropy_0.003_AbC12")
    run.record_stop("SIGINT", [{"epoch": 1}, {"epoch": 2}], None, {"trial": TRIAL, "step": 2, "reason": "r"})
    stopped = json.loads((run.path / "stopped.json").read_text())
    assert stopped["stopped_by"] == "assessor" and stopped["assessor"] == {"step": 2, "reason": "r"}
    run.record_stop("SIGINT", [{"epoch": 1}], None)
    assert json.loads((run.path / "stopped.json").read_text())["stopped_by"] is None


def test_every_shipped_assessor_records_its_stops():
    import yaml

    root = Path(__file__).resolve().parents[1]
    for name in sorted(root.glob("config*.yml")):
        assessor = yaml.safe_load(name.read_text()).get("assessor")
        if assessor:
            assert assessor.get("className", "").startswith("harness.experiment.assessors."), name.name
