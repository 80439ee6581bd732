"""NNI 3.0's TensorBoard button on the local platform, and the link each trial makes where it looks."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nni_node_file(relative: str) -> str:
    spec = importlib.util.find_spec("nni_node")
    assert spec and spec.submodule_search_locations, "nni_node (NNI's manager) is not installed"
    return (Path(next(iter(spec.submodule_search_locations))) / relative).read_text()


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


def test_a_trial_links_its_logs_where_the_button_looks(tmp_path):
    from harness.outputs.sinks import link_for_tensorboard_button

    experiment = tmp_path / "nni_experiments" / "abc123"
    logs = experiment / "environments" / "local-env" / "trials" / "S6U8m" / "tensorboard"
    logs.mkdir(parents=True)
    (logs / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    link = link_for_tensorboard_button(logs)
    assert link == experiment / "trials" / "S6U8m" / "output" / "tensorboard"
    assert link.is_symlink() and [p.name for p in link.iterdir()] == ["events.out.tfevents.1.host.1.0"]
    assert link_for_tensorboard_button(logs) == link  # a resumed trial: the link is already there

    taken = experiment / "environments" / "local-env" / "trials" / "ioMMF" / "tensorboard"
    taken.mkdir(parents=True)
    (experiment / "trials" / "ioMMF" / "output" / "tensorboard").mkdir(parents=True)  # NNI made it first
    assert link_for_tensorboard_button(taken) is None  # left alone: nothing of NNI's is replaced
    assert link_for_tensorboard_button(tmp_path / "standalone" / "run" / "tensorboard") is None
