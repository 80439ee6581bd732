"""Checkpoints as an attacker or a clumsy team-mate leaves them in a shared run folder (issue 25): a pickled payload
in last.pt, best.pt or a PBT member.pt never runs, a checkpoint of another model is one line naming the file, and a
disk that fills during a checkpoint is one line with the previous checkpoint kept."""
import shutil

import pytest
import torch

from hostile_helpers import (
    FAST,
    data_copy,
    one_line,
    payload_runs_when_unpickled,
    plant,
    run_predict,
    run_trial,
    small_disk,
    trained_run,
)


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    """One finished run per checkpoint mode, copied by each test before it is damaged."""
    folder = tmp_path_factory.mktemp("runs")
    return {mode: trained_run(demo_dir, folder / mode, "--checkpoint", mode) for mode in ("last", "best")}


def copied(run, tmp_path):
    return shutil.copytree(run, tmp_path / "standalone" / run.name)


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_a_planted_payload_in_a_run_folder_never_runs(runs, tmp_path, name):
    """last.pt is read by `trial.py --resume`, best.pt by `python predict.py`: both refuse the file in one line."""
    run = copied(runs[name.removesuffix(".pt")], tmp_path)
    marker = tmp_path / "payload-ran"
    plant(run / name, marker, step=1, epoch=1)
    assert payload_runs_when_unpickled(run / name, marker), "the planted file is no payload: the test proves nothing"
    done = run_trial("--resume", str(run)) if name == "last.pt" else run_predict(str(run))
    assert one_line(done).endswith(f"{run / name} holds more than tensors and plain values (Weights only load "
                                   "failed): it was not written by this harness, and it is not loaded (loading it "
                                   "could run code)")
    assert not marker.exists(), "the payload ran"


def test_a_planted_payload_in_a_pbt_parent_never_runs(demo_dir, tmp_path):
    """PBT's load_checkpoint_dir comes from NNI's unauthenticated REST API: its member.pt is refused the same way."""
    parent = tmp_path / "out" / "standalone" / "pbt" / "0"
    parent.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    plant(parent / "member.pt", marker, model={}, optimizer={})
    assert payload_runs_when_unpickled(parent / "member.pt", marker)
    done = run_trial("--data_dir", str(demo_dir), "--output_dir", str(tmp_path / "out"), "--cache_dir",
                     str(tmp_path / "cache"), *FAST, "--load_checkpoint_dir", str(parent))
    assert one_line(done).endswith(f"{parent / 'member.pt'} holds more than tensors and plain values (Weights only "
                                   "load failed): it was not written by this harness, and it is not loaded (loading "
                                   "it could run code)")
    assert not marker.exists(), "the payload ran"
    assert [p.name for p in (tmp_path / "out" / "standalone").iterdir()] == ["pbt"], "a failed trial left its folder"


def test_a_checkpoint_of_another_model_is_one_line_naming_it(runs, tmp_path):
    """A team-mate's last.pt of a 2-class run copied into an 18-class one: torch's 'size mismatch for fc.weight'
    becomes one line naming the file."""
    run = copied(runs["last"], tmp_path)
    state = torch.load(run / "last.pt", weights_only=True)
    state["fit"]["model"]["fc.weight"] = torch.zeros(2, state["fit"]["model"]["fc.weight"].shape[1])
    state["fit"]["model"]["fc.bias"] = torch.zeros(2)
    torch.save(state, run / "last.pt")
    line = one_line(run_trial("--resume", str(run)))
    assert line.startswith(f"trial.py: error: {run / 'last.pt'} does not fit this run's resnet10t with heads "
                           "{'multi': 18}: another model's or another data set's checkpoint (RuntimeError: Error(s) in "
                           "loading state_dict for ResNet: size mismatch for fc.weight")


def test_a_disk_that_fills_during_a_checkpoint_keeps_the_previous_one(demo_dir, tmp_path):
    """last.pt (59 MB here) fits once on a 90 MB disk, not twice: epoch 2's checkpoint finds the disk full. The
    trial ends in one 'is full' line, and epoch 1's last.pt is whole (what a resume continues from)."""
    with small_disk(tmp_path / "disk", "90m") as disk:
        done = run_trial("--data_dir", str(data_copy(demo_dir, tmp_path)), "--output_dir", str(disk),
                         "--cache_dir", str(tmp_path / "cache"), *FAST, "--epochs", "2")
        line = one_line(done)
        (run,) = (disk / "standalone").iterdir()
        assert line.endswith(f"{run} is full: writing last.pt needed more than {line.split('more than ')[1]}")
        assert "nothing was written" in line
        assert torch.load(run / "last.pt", weights_only=True)["step"] == 1
        assert not list(run.glob(".*.tmp")), "a temporary file was left on the full disk"
