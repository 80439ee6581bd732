"""What arrives over NNI's open REST API (issue 25), in a real experiment: a parameter set that is a JSON list, and
a PBT save_checkpoint_dir naming NNI's own db/ folder (beside nni.sqlite). Each such trial fails at once with one
line; the tuner's own trial succeeds."""
import json
import urllib.request

import yaml

from harness.experiment.config import load_config, with_overrides
from harness.experiment.follower import wait
from harness.experiment.nnictl import free_port, start, stop
from harness.experiment.rest import NniRest
from hostile_helpers import ROOT


def inject(port: int, body) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/nni/trial-jobs", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_injected_parameter_sets_fail_in_one_line_each(demo_dir, tmp_path):
    config = with_overrides(
        load_config(ROOT / "config.demo.yml"), ROOT, working_dir=tmp_path / "exp", max_trials=3,
        trial_args=["--data_dir", str(demo_dir), "--epochs", "1", "--img_size", "32", "--num_workers", "0"])
    config["trialConcurrency"] = 1  # one at a time: NNI 3.0 may swap the sets of trials that start together
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    experiment_id = start(path, port)
    db = tmp_path / "exp" / experiment_id / "db"
    try:
        inject(port, [1, 2])
        inject(port, {"batch_size": 8, "model": "resnet10t", "criterion": "cross_entropy", "classification": "mask",
                      "lr": 0.003, "optimizer": "adam", "save_checkpoint_dir": str(db)})
        rest = NniRest(port)
        wait(rest, timeout=900, echo=lambda line: None)
        statuses = sorted(t["status"] for t in rest.trials())
    finally:
        stop(experiment_id)
    assert statuses == ["FAILED", "FAILED", "SUCCEEDED"], statuses
    errors = [log.read_text(errors="replace").strip().splitlines()
              for log in (tmp_path / "exp" / experiment_id).rglob("trial.stderr")]
    last_lines = sorted(lines[-1] for lines in errors if lines)
    assert not any("Traceback" in line for lines in errors for line in lines), errors
    assert last_lines == sorted([
        "trial.py: error: NNI's parameters must be a JSON object of search-space keys, got a list: [1, 2]",
        f"trial.py: error: save_checkpoint_dir {db} is inside NNI's own db/ folder of the experiment: PBT's "
        "checkpoints must not be written beside NNI's database and logs"]), last_lines
    assert not list(db.rglob("member.pt")), "a checkpoint was written beside NNI's database"
