"""scripts/demo.sh, the README's main command, end to end on small settings: its flags reach the experiment and
the trials, and its two trials side by side each get half the cores."""
import json
import os
import subprocess
import sys
from pathlib import Path

from harness.experiment.nnictl import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_runs_two_trials_side_by_side_with_half_the_cores_each(demo_dir, tmp_path):
    # The environment this test runs in (scripts/test.sh installed it, so the demo installs nothing more).
    env = {**os.environ, "VENV": sys.prefix}
    done = subprocess.run(
        ["bash", "scripts/demo.sh", "--data_dir", str(demo_dir), "--working_dir", str(tmp_path / "exp"),
         "--max_trials", "2", "--port", str(free_port()), "--stop", "--",
         "--epochs", "1", "--img_size", "32", "--num_workers", "0", "--cache_dir", str(tmp_path / "cache")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 trial(s) succeeded" in done.stdout
    assert "installing" not in done.stdout, "the test environment already has what the demo needs"
    runs = sorted((tmp_path / "exp").glob("*/*/params.json"))
    runs = [json.loads(path.read_text()) for path in runs if not path.parent.parent.is_symlink()]
    assert len(runs) == 2
    cores = len(os.sched_getaffinity(0))  # what nproc counts
    for params in runs:
        assert params["cpu_threads"] == max(1, cores // 2)
        assert params["epochs"] == 1 and params["img_size"] == 32, "flags after -- reach the trials"
        assert params["data_dir"] == str(demo_dir.resolve())
