"""Driving nnictl: start an experiment, stop it, and nnictl itself with a web server that may take its time.

`python -m harness.experiment.nnictl create --config ...` is nnictl with one change: NNI 3.0's launcher gives its
freshly started web server about 3 s (three tries a second apart) to answer /check-status, then gives up with a
ConnectionError. On a machine whose cores are busy the server often needs longer, and the start fails although
nothing is wrong. Here that one wait is raised to WEB_SERVER_WAIT seconds; a server that answers at once is not held
up."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import warnings
from pathlib import Path

from harness.errors import UserError
from harness.experiment.rest import NniRest

WEB_SERVER_WAIT = 90  # seconds: a cold start of NNI's node server under load 18 on 2 cores took under 40 s
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def nnictl() -> str:
    # Trials run `python` from the PATH of the process that starts them: the environment this module runs in.
    found = shutil.which("nnictl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if not found:
        raise UserError("nnictl not found: install the requirements (scripts/demo.sh does) and activate the "
                        "environment")
    return found


def nnictl_env() -> dict[str, str]:
    """The environment nnictl runs in: this interpreter's folder first on the PATH (trials inherit it), and
    setuptools' pkg_resources deprecation warning, which nnictl triggers on every call and a user cannot act on,
    filtered out (only that one warning: others still show)."""
    filters = [w for w in os.environ.get("PYTHONWARNINGS", "").split(",") if w]
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                PYTHONWARNINGS=",".join(filters + ["ignore:pkg_resources is deprecated:UserWarning"]))


def start(config_path: Path, port: int, answer_within: float = 60) -> str:
    """Start the experiment in the background; returns its id once the REST server answers."""
    nnictl()  # a clear error when NNI is not installed in this environment
    done = subprocess.run([sys.executable, "-m", "harness.experiment.nnictl", "create", "--config",
                           str(Path(config_path).resolve()), "--port", str(port)],
                          capture_output=True, text=True, env=nnictl_env(), cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"nnictl create --config {config_path} failed: {tail[-1] if tail else done.returncode}")
    rest = NniRest(port)
    deadline = time.monotonic() + answer_within
    while time.monotonic() < deadline:
        try:
            return rest.experiment()["id"]
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
            time.sleep(1)
    raise UserError(f"the NNI manager did not answer on port {port} within {answer_within:.0f} s (see nnictl's log)")


def stop(experiment_id: str) -> None:
    subprocess.run([nnictl(), "stop", experiment_id], capture_output=True, text=True, env=nnictl_env())


def remove_failed_start(working_dir: Path, before: set[Path], staged: Path) -> None:
    """What a failed `nnictl create` left: the experiment folder NNI made (only NNI's own files: nothing of the
    user's is in a folder made this second) and the staged config."""
    for made in set(working_dir.iterdir()) - before:
        if made.is_dir() and not any(made.glob("*/params.json")):
            shutil.rmtree(made, ignore_errors=True)
            print(f"removed {made}, the folder of the experiment that failed to start", file=sys.stderr)
    staged.unlink(missing_ok=True)


def patch_launcher(wait: int = WEB_SERVER_WAIT) -> None:
    from nni.experiment import launcher

    original = launcher._check_rest_server

    def patient(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        original(port, retry=max(retry, wait), url_prefix=url_prefix)

    launcher._check_rest_server = patient


def main() -> int:
    # nnictl imports pkg_resources, which warns on every call; the user cannot act on it.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    patch_launcher()
    from nni.tools.nnictl.nnictl import parse_args

    sys.argv[0] = "nnictl"
    return parse_args() or 0


if __name__ == "__main__":
    raise SystemExit(main())
