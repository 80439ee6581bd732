"""NNI's remote training service: config.remote.yml run against an sshd on 127.0.0.1, in both reuse modes.

The sshd is this machine's own openssh-server on a free port, with a host key and a user key made for the test, so
the experiment goes through everything a real remote machine does: SSH, the code upload filtered by .nniignore,
NNI's runner on the "remote" side, the trials reporting back to the manager through nniManagerIp. A folder under
tmp_path stands in for the shared storage that every machine mounts (--output_dir, --cache_dir)."""
from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nni_node
import pandas as pd
import psutil
import pytest
import yaml

from harness.experiment.config import load_config, with_overrides
from harness.experiment.follower import wait
from harness.experiment.nnictl import free_port, port_is_free, start, stop
from harness.experiment.rest import NniRest
from trial_checks import check_run_folder

ROOT = Path(__file__).resolve().parents[1]
SSHD = Path("/usr/sbin/sshd")
# Where NNI keeps its files on a remote machine: reuseMode true under /tmp (its shell executor's temp path),
# reuseMode false under the remote user's home (nni.tools.nni_manager_scripts.create_trial_keeper_dir).
REUSE_ROOT = Path("/tmp/nni-experiments")
V3_ROOT = Path.home() / "nni-experiments"
EXPERIMENT_TIMEOUT = 600  # seconds: a bound well above the 35 to 90 s one experiment took on 2 cores
# One small model on one task: two trials of the same task make an ensemble whatever the tuner picks.
TINY_SPACE = {"model": {"_type": "choice", "_value": ["resnet10t"]},
              "batch_size": {"_type": "choice", "_value": [32]},
              "classification": {"_type": "choice", "_value": ["multi"]},
              "lr": {"_type": "loguniform", "_value": [1e-3, 5e-3]}}
TINY_TRIAL = ["--epochs", "1", "--img_size", "32", "--num_workers", "0", "--pretrained", "false",
              "--dump_threshold", "0"]


def require_sshd() -> None:
    if SSHD.is_file():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{SSHD} is missing: .ci/run installs openssh-server before the tests (apt-get install -y "
                    "openssh-server); run it, or install the package")
    pytest.skip(f"{SSHD} is missing: apt-get install -y openssh-server runs these tests")


@dataclass
class Sshd:
    port: int
    user: str
    key: Path
    log: Path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An sshd on 127.0.0.1 that lets this user in with a key made here; killed at the end whatever happened."""
    require_sshd()
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"nni-harness test {name}",
                        "-f", str(folder / name)], check=True, capture_output=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        # The key lives in the test's folder, not in ~/.ssh: nothing of the user's is touched.
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        # The keys are under /tmp (world-writable parent): StrictModes would refuse them.
        "StrictModes no",
        "UsePAM no",
        # NNI uploads the code and reads results over SFTP.
        "Subsystem sftp internal-sftp",
        # reuseMode false runs `pip install nni --upgrade` on every start: answered from the installed nni, with
        # no package index, so the test neither needs the network nor changes the environment.
        "SetEnv PIP_NO_INDEX=1",
        "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder, absent until the service ran
    log = folder / "sshd.log"
    with log.open("w") as sink:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)], stdout=sink,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start on 127.0.0.1:{port}: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Sshd(port=port, user=getpass.getuser(), key=folder / "user_key", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def remote_config(sshd: Sshd, demo_dir: Path, shared: Path, working_dir: Path, space: Path,
                  reuse: bool) -> dict[str, Any]:
    """config.remote.yml as shipped, pointed at this machine: one machine (the test's sshd), this venv's python,
    the demo data, and the shared folder for --output_dir and --cache_dir; one tiny trial, no GPU."""
    config = with_overrides(load_config(ROOT / "config.remote.yml"), ROOT, working_dir=working_dir, max_trials=1,
                            drop_assessor=True,
                            trial_args=["--data_dir", str(demo_dir), "--output_dir", str(shared / "runs"),
                                        "--cache_dir", str(shared / "cache")] + TINY_TRIAL)
    words = shlex.split(config["trialCommand"])
    assert words[0].endswith("/bin/python"), "the shipped trialCommand names the interpreter by its full path"
    config["trialCommand"] = shlex.join([sys.executable] + words[1:])
    config["searchSpaceFile"] = str(space)
    config["trialConcurrency"] = 1
    config.pop("trialGpuNumber")  # no GPU here: NNI would wait for one forever
    config["nniManagerIp"] = "127.0.0.1"
    machine = dict(config["trainingService"]["machineList"][0], host="127.0.0.1", port=sshd.port, user=sshd.user,
                   sshKeyFile=str(sshd.key), pythonPath=str(Path(sys.executable).parent))
    machine.pop("maxTrialNumberPerGpu")  # NNI refuses it without trialGpuNumber
    machine.pop("useActiveGpu")
    config["trainingService"] = dict(config["trainingService"], reuseMode=reuse, machineList=[machine])
    return config


@dataclass
class RemoteRun:
    reuse: bool
    experiment_id: str
    status: str
    trials: list[dict[str, Any]]
    shared: Path
    working_dir: Path
    remote_logs: dict[str, str] = field(default_factory=dict)  # path under NNI's remote folder -> its text
    left_running: list[str] = field(default_factory=list)  # command lines still alive after nnictl stop
    web_ui_stdout: str | None = None  # the trial's stdout as the web UI's log view fetches it; None: refused


def remote_root(reuse: bool, experiment_id: str) -> Path:
    return (REUSE_ROOT if reuse else V3_ROOT) / experiment_id


def remote_logs(reuse: bool, experiment_id: str) -> dict[str, str]:
    """The trials' output where NNI keeps it on the machine. reuseMode true: the stdout of the machine's one trial
    runner, which every trial it runs writes to; false: one folder per trial (trial.log holds NNI's lines only)."""
    root = remote_root(reuse, experiment_id)
    pattern = "envs/*/trialrunner_stdout" if reuse else "environments/*/trials/*/trial.stdout"
    return {str(path.relative_to(root)): path.read_text(errors="replace") for path in root.glob(pattern)}


def web_ui_log(rest: NniRest, trial_id: str) -> str | None:
    """What the web UI's trial log view gets (NNI's REST API, trial-file); None when NNI refuses."""
    try:
        with urllib.request.urlopen(f"{rest.base}/trial-file/{trial_id}/stdout", timeout=30) as response:
            return response.read().decode(errors="replace")
    except urllib.error.HTTPError:
        return None


def processes_of(experiment_id: str, shared: Path) -> list[psutil.Process]:
    """What this experiment runs: NNI's manager, runner or keeper (their command lines name the experiment) and
    the trials (theirs name the shared folder)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if process.pid != os.getpid() and (experiment_id in line or f"{shared}/" in line):
            found.append(process)
    return found


def stop_and_clean(experiment_id: str, reuse: bool, shared: Path) -> list[str]:
    """nnictl stop, then a bounded wait for what NNI started to end (its trial keeper takes a few seconds); what
    is still alive then is listed (for the test to fail on) and ended, and NNI's remote folder removed."""
    stop(experiment_id)
    deadline = time.monotonic() + 30
    while (left := processes_of(experiment_id, shared)) and time.monotonic() < deadline:
        time.sleep(1)
    lines = []
    for process in left:
        try:
            lines.append(" ".join(process.cmdline()))
            process.kill()
        except psutil.Error:
            pass
    # Only this experiment's folder, which NNI made on the "remote" side.
    shutil.rmtree(remote_root(reuse, experiment_id), ignore_errors=True)
    return lines


def free_port_pair() -> int:
    """A free port whose next one is free too: reuseMode true's trial runners talk to the manager on port + 1."""
    for _ in range(100):
        port = free_port()
        if port < 65535 and port_is_free(port + 1):
            return port
    raise AssertionError("no two free ports in a row on 127.0.0.1")


def run_remote_experiment(sshd: Sshd, demo_dir: Path, shared: Path, folder: Path, reuse: bool) -> RemoteRun:
    space = folder / "search_space.json"
    space.write_text(json.dumps(TINY_SPACE))
    config = remote_config(sshd, demo_dir, shared, folder / "nni", space, reuse)
    config_path = folder / "config.remote.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port_pair()
    experiment_id = start(config_path, port)
    run = RemoteRun(reuse, experiment_id, "NOT FOLLOWED", [], shared, folder / "nni")
    try:
        rest = NniRest(port)
        run.status = wait(rest, timeout=EXPERIMENT_TIMEOUT, echo=lambda line: print(line, flush=True))
        run.trials = rest.trials()
        run.remote_logs = remote_logs(reuse, experiment_id)
        run.web_ui_stdout = web_ui_log(rest, run.trials[0]["trialJobId"]) if run.trials else None
    finally:
        run.left_running = stop_and_clean(experiment_id, reuse, shared)
    return run


@pytest.fixture(scope="module")
def remote_runs(sshd: Sshd, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[bool, RemoteRun]:
    """One tiny experiment per reuse mode, one after the other, into one shared folder (as two experiments of a
    real search would share one storage)."""
    shared = tmp_path_factory.mktemp("shared")
    return {reuse: run_remote_experiment(sshd, demo_dir, shared, tmp_path_factory.mktemp(f"reuse-{reuse}"), reuse)
            for reuse in (True, False)}


def test_shipped_remote_config_is_a_valid_nni_config(tmp_path: Path) -> None:
    from nni.experiment.config import ExperimentConfig

    config = load_config(ROOT / "config.remote.yml")
    key = tmp_path / "id_ed25519"
    key.write_text("stand-in: NNI only checks that the key file exists")
    resolved = with_overrides(config, ROOT)
    service = resolved["trainingService"]
    resolved["trainingService"] = dict(service, machineList=[dict(m, sshKeyFile=str(key))
                                                             for m in service["machineList"]])
    ExperimentConfig(**resolved).validate()

    assert service["platform"] == "remote" and service["reuseMode"] is True
    assert config["nniManagerIp"] and config["trialGpuNumber"] == 1
    assert config["tuner"]["classArgs"]["optimize_mode"] == "maximize"
    words = shlex.split(config["trialCommand"])
    for machine in service["machineList"]:
        assert {"host", "port", "user", "sshKeyFile", "pythonPath", "maxTrialNumberPerGpu"} <= set(machine)
        # pythonPath is the venv's bin folder (NNI appends /python), and the trial runs that venv's python
        assert not machine["pythonPath"].endswith("python") and words[0] == f"{machine['pythonPath']}/python"
    # Every path a trial uses is absolute: the trial runs inside NNI's copy of the code on the machine.
    for flag in ("--data_dir", "--output_dir", "--cache_dir"):
        assert Path(words[words.index(flag) + 1]).is_absolute(), flag


def test_nniignore_drops_the_same_files_for_both_of_nnis_uploaders(tmp_path: Path) -> None:
    """NNI's own upload code, run on a copy of the checkout with a venv, data, runs and caches planted in it:
    what each reuse mode would upload holds the checkout's code and none of the venv, data, runs or caches."""
    # The checkout's files as git sees them (tracked, and new ones not yet committed), less what .gitignore drops.
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    tree = tmp_path / "checkout"
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    planted = [".venv/lib/python3.11/site-packages/torch/__init__.py", ".venv/bin/python", ".git/HEAD",
               "data/demo/train/train.csv", "data/mask/eval/info.csv", "weights/b4.pth",
               "nni_experiments/Xy12abCd/multi_x_1/last.pt", "nni_experiments/Xy12abCd/db/nni.sqlite",
               "harness/__pycache__/params.cpython-311.pyc", "harness/data/__pycache__/split.cpython-311.pyc",
               ".pytest_cache/v/cache/nodeids", ".ruff_cache/CACHEDIR.TAG", ".cache/x", "submission.csv",
               "bench_out/a.json"]
    for name in planted:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    expected = {name for name in tracked if name and (ROOT / name).is_file()
                and not name.startswith("nni_experiments/")}
    assert "harness/data/split.py" in expected and ".nniignore" in expected

    # reuseMode true packs with tarAdd: it lists the entries .nniignore keeps, folders included, and tar then takes
    # each listed folder whole, so there only the top-level patterns count (harness/__pycache__ travels along).
    # reuseMode false packs with createTarball, which lists files only: every pattern counts.
    node_dir = Path(nni_node.__path__[0])
    script = """
        const globals = require('common/globals');  // first: NNI's modules import each other in this order
        const [source, out] = process.argv.slice(1);
        globals.globals.paths = {experimentRoot: out};
        require('training_service/common/util').tarAdd(out + '/reuse.tgz', source).then(
            () => require('common/tarball').createTarball('v3', source)).then(
            v3 => console.log(JSON.stringify({reuse: out + '/reuse.tgz', v3})),
            error => { console.error(error); process.exit(1); });
    """
    out = tmp_path / "nni"
    out.mkdir()
    done = subprocess.run([str(node_dir / "node"), "-e", script, str(tree), str(out)],
                          env=dict(os.environ, NODE_PATH=str(node_dir)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    packed = {}
    for mode, tar_path in json.loads(done.stdout).items():
        with tarfile.open(tar_path) as tar:
            packed[mode] = {member.name.removeprefix("./") for member in tar.getmembers() if member.isfile()}
    assert packed["v3"] == expected, (f"reuseMode false packs {sorted(packed['v3'] - expected)[:5]}, "
                                      f"drops {sorted(expected - packed['v3'])[:5]}")
    assert packed["reuse"] >= expected, f"reuseMode true drops {sorted(expected - packed['reuse'])[:5]}"
    code_folders = {name.split("/")[0] for name in expected if "/" in name}
    strays = {name for name in packed["reuse"] - expected if name.split("/")[0] not in code_folders}
    assert not strays, f"reuseMode true packs {sorted(strays)[:5]}"
    assert packed["reuse"] - expected == {"harness/__pycache__/params.cpython-311.pyc",
                                          "harness/data/__pycache__/split.cpython-311.pyc"}


@pytest.mark.parametrize("reuse", [True, False], ids=["reuseMode-true", "reuseMode-false"])
def test_a_remote_trial_succeeds_and_writes_where_the_config_says(remote_runs: dict[bool, RemoteRun],
                                                                  demo_dir: Path, reuse: bool) -> None:
    run = remote_runs[reuse]
    logs = "\n".join(f"--- {path} (on the machine):\n{text[-3000:]}" for path, text in run.remote_logs.items())
    assert run.status == "DONE", f"experiment {run.experiment_id}: {run.status}\n{logs}"
    [trial] = run.trials
    assert trial["status"] == "SUCCEEDED", logs
    assert not run.left_running, f"still running after nnictl stop: {run.left_running}"

    # The run folder on the shared storage, as --output_dir says: <output_dir>/<experiment id>/<run>_<trial id>.
    [folder] = (run.shared / "runs" / run.experiment_id).glob(f"*_{trial['trialJobId']}")
    params = check_run_folder(folder, demo_dir, epochs=1)
    assert params["experiment_id"] == run.experiment_id
    assert Path(params["output_dir"]) == (run.shared / "runs").resolve()
    # Reuse mode hands each trial its own set; reuseMode false's trial cannot reach the manager's record and says so.
    assert params["nni_parameters"] == json.loads(trial["hyperParameters"][0])["parameters"]
    assert ("in reuse mode" if reuse else "NNI_PLATFORM is 'remote'") in params["nni_handout"]["note"]
    assert list(folder.glob("submission1_*_soft.csv")) and list(folder.glob("valid1_*_soft.csv"))
    assert list((run.shared / "cache").glob("*.npy")), "the image cache is on the shared storage (--cache_dir)"
    # NNI's own files stay on the manager, and no trial wrote there.
    assert (run.working_dir / run.experiment_id / "db" / "nni.sqlite").is_file()
    assert not list(run.working_dir.rglob("params.json"))

    # The trial's log is on the machine, where README says.
    where = [path for path, text in run.remote_logs.items() if f"run folder {folder}" in text]
    # reuseMode false: the web UI fetches it over SFTP into the manager's experiment folder; true: it cannot.
    if reuse:
        assert len(where) == 1 and where[0].startswith("envs/") and where[0].endswith("/trialrunner_stdout"), logs
        assert run.web_ui_stdout is None
    else:
        assert where == [f"environments/remote-worker1/trials/{trial['trialJobId']}/trial.stdout"], logs
        assert run.web_ui_stdout is not None and f"run folder {folder}" in run.web_ui_stdout
        copy = run.working_dir / run.experiment_id / "trials" / trial["trialJobId"] / "trial.stdout"
        assert f"run folder {folder}" in copy.read_text()


def test_the_ensemble_blends_the_remote_runs_from_the_shared_storage(remote_runs: dict[bool, RemoteRun],
                                                                     demo_dir: Path, tmp_path: Path) -> None:
    roots = [run.shared / "runs" / run.experiment_id for run in remote_runs.values()]
    info = demo_dir / "eval" / "info.csv"
    output = tmp_path / "submission.csv"
    done = subprocess.run([sys.executable, "-m", "ensemble", *[arg for root in roots for arg in ("--from", root)],
                           "--info", str(info), "-o", str(output)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gathered 2 eval CSVs from 2 runs" in done.stdout, done.stdout
    submission = pd.read_csv(output)
    assert list(submission.columns) == ["ImageID", "ans"]
    assert submission["ImageID"].tolist() == pd.read_csv(info)["ImageID"].tolist()
    assert submission["ans"].between(0, 17).all()
