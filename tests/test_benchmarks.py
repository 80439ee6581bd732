"""The benchmarks: run by name without path edits, their clock, their pure helpers, and the figures files they wrote
stay readable (docs/speed.md quotes them)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HELPERS = {"__init__", "common", "runner", "step_clock"}  # modules the suites import, not commands
# Every command of the package, found on disk: a new benchmark is checked the moment it exists.
SUITES = sorted(["trial_speed", *(path.stem for path in (ROOT / "benchmarks").glob("*.py")
                                  if path.stem not in HELPERS)])


@pytest.mark.parametrize("suite", SUITES)
def test_each_suite_runs_by_name(suite):
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{suite}", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_a_measure_must_be_named():
    done = subprocess.run([sys.executable, "-m", "benchmarks.trial_speed", "nonsense"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert "unknown: nonsense" in done.stderr and "timm" in done.stderr


def test_the_measures_have_distinct_names_and_flags():
    import argparse

    from benchmarks.runner import parser_for
    from benchmarks.trial_speed.measures import MEASURES

    assert len({m.name for m in MEASURES}) == len(MEASURES)
    parser_for("", MEASURES, ROOT / "bench_out" / "x.json")  # argparse refuses a flag added twice
    assert isinstance(parser_for("", MEASURES, ROOT).parse_args(["cache"]), argparse.Namespace)


@pytest.mark.parametrize("figures", sorted((ROOT / "benchmarks").glob("trial_speed_*.json")), ids=lambda p: p.name)
def test_the_figures_files_print_their_tables(figures):
    from benchmarks.runner import report
    from benchmarks.trial_speed.measures import MEASURES

    stored = json.loads(figures.read_text())
    printed = report(stored, MEASURES)
    assert all(f"## {name} " in printed for name in stored)
    assert "|---|" in printed


def test_the_step_clock_times_every_optimiser_step(tmp_path):
    from benchmarks.common import clocked

    script = tmp_path / "train.py"
    script.write_text("import torch\nw = torch.nn.Parameter(torch.ones(2))\nopt = torch.optim.SGD([w], lr=0.1)\n"
                      "for _ in range(3):\n    w.sum().backward()\n    opt.step()\n")
    run = clocked([str(script)])
    assert len(run["steps_s"]) == 3 and 0 < run["steps_s"][0] <= run["steps_s"][-1] <= run["wall_s"]
    assert run["peak_rss_mb"] > 10
    assert len(clocked([str(script)], stop_at=2)["steps_s"]) == 2


def test_epoch_rates_split_the_steps_into_epochs():
    from benchmarks.common import epoch_rates

    steps = [1.0, 2.0, 3.0, 10.0, 10.5, 11.0]  # two epochs of 3 steps, batch 4
    assert epoch_rates(steps, 3, 4) == [8 / 2.0, 8 / 1.0]
    with pytest.raises(RuntimeError, match="not whole epochs of 4"):
        epoch_rates(steps, 4, 4)


def test_the_precision_table_runs_on_the_cpu():
    """The GPU part of the speed benchmark, exercised on the CPU at a tiny size so that it cannot rot unseen."""
    from benchmarks.trial_speed.precision import precision_table

    rows = precision_table(["resnet10t"], torch.device("cpu"), img_size=32, batch_size=4, steps=2,
                           amp_dtype=torch.bfloat16)
    assert rows[0]["model"] == "resnet10t"
    assert all(rows[0][key] > 0 for key in ("fp32", "amp", "amp+channels_last", "amp_speedup"))


def test_the_start_up_profile_counts_each_top_level_package_once():
    from benchmarks.common import import_profile

    importtime = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |     torch._C",
        "import time:      2000 |    2000000 | torch",
        "import time:       100 |     500000 |   timm.layers",
        "import time:       100 |    1000000 | timm",
        "import time:        50 |     250000 | harness.data.transforms",
        "import time:        50 |     250000 | harness.data.loaders",
        "a line of the trial's own output"])
    assert import_profile(importtime) == {"torch": 2.0, "timm": 1.0, "harness": 0.5}


def test_timm_reads_the_trials_photos_split_as_the_trial_splits_them(demo_dir, tmp_path):
    """timm's train.py trains on an ImageFolder of symlinks to the trial's own photos: the holdout's training
    people under train/, its validation people under val/, one folder per class on both sides."""
    from benchmarks.trial_speed.same_images import image_folder
    from harness.data.layouts import load_train
    from harness.data.split import split_indices

    train_set = load_train(demo_dir)
    labels = train_set.task_labels("multi")
    train_idx, val_idx = split_indices(train_set.groups, train_set.group_strata, 0.2, 42)
    folder = image_folder(train_set, labels, train_idx, val_idx, tmp_path / "folder")
    for split, indices in (("train", train_idx), ("val", val_idx)):
        links = sorted((folder / split).glob("*/*"))
        assert len(links) == len(indices) and all(link.resolve().is_file() for link in links)
        assert sorted(p.name for p in (folder / split).iterdir()) == [f"{k:02d}" for k in range(labels.max() + 1)]
    people = {split: {link.name.split("_")[0] for link in (folder / split).glob("*/*")} for split in ("train", "val")}
    assert not people["train"] & people["val"]


def test_a_missing_timm_checkout_is_one_line():
    from benchmarks.trial_speed.same_images import timm_script
    from harness.errors import UserError

    with pytest.raises(UserError, match="expected a pytorch-image-models checkout holding train.py"):
        timm_script(ROOT / "no-such-folder")


@pytest.mark.parametrize("load, cores, shares", [(0, 2, []), (0.1, 2, [0.2]), (0.5, 2, [1.0]), (0.75, 2, [1.0, 0.5]),
                                                 (0.3, 4, [1.0, 0.2])])
def test_the_contention_spinners_take_the_asked_share_of_the_machine(load, cores, shares):
    from benchmarks.trial_speed.contention import spinner_shares

    assert spinner_shares(load, cores) == pytest.approx(shares)


@pytest.mark.parametrize("load", [-0.1, 0.95])
def test_a_contention_load_beyond_the_machine_is_refused(load):
    from benchmarks.trial_speed.contention import spinner_shares

    with pytest.raises(ValueError, match="expected a share of the machine"):
        spinner_shares(load, 2)


def test_the_spinners_stop_when_their_block_fails():
    from benchmarks.trial_speed.contention import spinning

    with pytest.raises(RuntimeError), spinning(0.05) as processes:
        assert processes and all(process.poll() is None for process in processes)
        raise RuntimeError("a run failed")
    assert all(process.poll() is not None for process in processes)


def test_another_checkouts_trial_gets_its_own_cache():
    from benchmarks.trial_speed.contention import other_trial_command

    command = other_trial_command(["/a/trial.py", "--data_dir", "d", "--cache_dir", "c", "--epochs", "1"],
                                  Path("/b/trial.py"), Path("/b-cache"))
    assert command == ["/b/trial.py", "--data_dir", "d", "--cache_dir", "/b-cache", "--epochs", "1"]
