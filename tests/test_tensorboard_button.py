"""NNI 3.0's TensorBoard button on the local platform, and README's workaround for where it looks."""
import importlib.util
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nni_node_file(relative: str) -> str:
    spec = importlib.util.find_spec("nni_node")
    assert spec and spec.submodule_search_locations, "nni_node (NNI's manager) is not installed"
    return (Path(next(iter(spec.submodule_search_locations))) / relative).read_text()


def readme_link_loop() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "environments/local-env/trials/*/tensorboard" in b]
    assert len(found) == 1, "README's TensorBoard paragraph has one link loop"
    return found[0]


def test_nni_still_looks_outside_the_trials_output_folder():
    """README says the button looks in <experiment>/trials/<id>/output/tensorboard while trials write under
    <experiment>/environments/<env>/trials/<id>: if an NNI upgrade changes either, README's paragraph is stale."""
    compat = nni_node_file("training_service/v3/compat.js")
    keeper = nni_node_file("common/trial_keeper/keeper.js")
    tensorboard = nni_node_file("extensions/nniTensorboardManager.js")
    assert "experimentRoot, 'trials', trialJobId, 'output')" in compat
    assert "experimentRoot, 'environments', this.envId, 'trials', trialId)" in keeper
    assert "getTrialOutputLocalPath(trialJobId), 'tensorboard')" in tensorboard
    assert "realpathSync" in tensorboard  # what lets a symbolic link stand in for the folder
    assert "--bind_all" in tensorboard  # README warns that the TensorBoard it starts listens on every interface


def test_readme_link_loop_puts_each_trials_logs_where_the_button_looks(tmp_path):
    experiment = tmp_path / "nni_experiments" / "abc123"
    for trial in ("S6U8m", "ioMMF"):
        logs = experiment / "environments" / "local-env" / "trials" / trial / "tensorboard"
        logs.mkdir(parents=True)
        (logs / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    (experiment / "environments" / "local-env" / "trials" / "noTB01").mkdir()  # a --tensorboard false trial
    (experiment / "trials" / "S6U8m" / "output" / "tensorboard").mkdir(parents=True)  # pressed before linking

    for _ in range(2):  # run again after more trials ended: the same result
        subprocess.run(["bash", "-euc", readme_link_loop()], cwd=experiment, check=True)

    for trial in ("S6U8m", "ioMMF"):
        looked_at = experiment / "trials" / trial / "output" / "tensorboard"
        assert looked_at.is_symlink()
        assert looked_at.resolve() == (experiment / "environments" / "local-env" / "trials" / trial /
                                       "tensorboard").resolve()
        assert [p.name for p in looked_at.iterdir()] == ["events.out.tfevents.1.host.1.0"]
    assert sorted(p.name for p in (experiment / "trials").iterdir()) == ["S6U8m", "ioMMF"]
