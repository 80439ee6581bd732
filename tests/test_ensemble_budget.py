"""--inference_budget: the members' summed inference time (each run's cost.json) stays within it, with and without
--select; one line when nothing fits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ensemble.selection import select_ensemble
from ensemble_helpers import assert_user_error, make_run, noisy_probs, run_cli

EVAL_IDS = [f"{i:04d}.jpg" for i in range(20)]
VALID_IDS = [f"p{i:03d}/mask1.jpg" for i in range(200)]
K = 18


def multi_experiment(root: Path, runs: dict[str, tuple[float, float | None]]) -> Path:
    """One single-epoch multi run per trial: {trial: (skill of its validation CSV, its ms per image or None)}."""
    exp = root / "Exp1"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, len(VALID_IDS))
    for trial, (skill, ms) in runs.items():
        folder = make_run(exp, "multi", "resnet18", trial, {1: (
            EVAL_IDS, noisy_probs(rng, rng.integers(0, K, len(EVAL_IDS)), K, 1.0), VALID_IDS,
            noisy_probs(rng, labels, K, skill), labels)})
        if ms is not None:
            (folder / "cost.json").write_text(json.dumps({"ms_per_image": ms, "parameters": 1000}))
    return exp


def chosen(stdout: str) -> set[str]:
    """The trials --select printed as chosen members."""
    return {line.split("resnet18_16_focal_0.0001_")[1].split("/")[0] for line in stdout.splitlines()
            if line.startswith("  ") and "resnet18_16_focal_0.0001_" in line}


def test_select_stays_within_the_budget(tmp_path, capsys):
    exp = multi_experiment(tmp_path, {"fast": (1.5, 1.0), "slow": (4.0, 5.0), "mid": (2.0, 2.0)})
    code, out, err = run_cli(["--from", exp, "--select", "--inference_budget", "3.5", "-o", tmp_path / "s.csv"],
                             capsys)
    assert code == 0, err
    assert chosen(out) and chosen(out) <= {"fast", "mid"}
    assert "--inference_budget 3.5 ms/image: the chosen members take" in out
    code, out, _ = run_cli(["--from", exp, "--select", "-o", tmp_path / "free.csv"], capsys)
    assert "slow" in chosen(out)  # without a budget the best member is chosen


def test_without_select_the_best_members_that_fit_are_blended(tmp_path, capsys):
    exp = multi_experiment(tmp_path, {"fast": (1.5, 1.0), "slow": (4.0, 5.0), "mid": (2.0, 2.0), "none": (3.0, None)})
    code, out, err = run_cli(["--from", exp, "--inference_budget", "5.5", "-o", tmp_path / "s.csv"], capsys)
    assert code == 0, err
    assert "1 member(s) left out, their runs have no cost.json" in out
    # best first: slow (5 ms) fits, then mid (2 ms) would not, fast (1 ms) no longer either: slow alone, 5 of 5.5 ms
    assert "blending 1 of 3 members, the best by validation macro_f1 that fit (5.000 ms/image)" in out


@pytest.mark.parametrize("select", [False, True])
def test_nothing_fits_is_one_line(tmp_path, capsys, select):
    exp = multi_experiment(tmp_path, {"a": (2.0, 3.1), "b": (2.0, 4.0)})
    code, _, err = run_cli(["--from", exp, "--inference_budget", "2", *(["--select"] if select else []), "-o",
                            tmp_path / "s.csv"], capsys)
    assert_user_error(code, err, "--inference_budget 2 ms/image: no member fits (the cheapest,", "3.100 ms/image")
    assert not (tmp_path / "s.csv").exists()


def test_a_bad_budget_is_refused_by_argparse(tmp_path, capsys):
    code, _, err = run_cli(["--from", tmp_path, "--inference_budget", "-1", "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and "expected a positive number of milliseconds per image" in err


def test_selection_picks_a_chosen_member_again_for_free():
    labels = np.array([0, 1, 2, 0, 1, 2])
    good = np.eye(3)[labels] * 0.8 + 0.2 / 3
    weak = np.full((6, 3), 1 / 3)
    selection = select_ensemble([good, weak], labels, rounds=5, metric="accuracy", costs=[2.0, 0.5], budget=2.2)
    assert selection.counts[1] == 0 and selection.counts[0] >= 1  # the weak one would pass the budget
    with pytest.raises(ValueError):
        select_ensemble([good, weak], labels, rounds=2, costs=[2.0, 3.0], budget=1.0)


@pytest.mark.parametrize("blend", ["weights", "stack"])
def test_every_blend_stays_within_the_budget(tmp_path, capsys, blend):
    """weights and stack are fitted on the budgeted selection's members alone: the slow, best member stays out."""
    exp = multi_experiment(tmp_path, {"fast": (1.5, 1.0), "slow": (4.0, 5.0), "mid": (2.0, 2.0)})
    code, out, err = run_cli(["--from", exp, "--select", "--blend", blend, "--inference_budget", "3.5", "-o",
                              tmp_path / "s.csv"], capsys)
    assert code == 0, err
    assert f"<- used (--blend {blend})" in out
    assert chosen(out) and chosen(out) <= {"fast", "mid"}
    taken = float(out.split("the chosen members take ")[1].split(" ms/image")[0])
    assert 0 < taken <= 3.5
