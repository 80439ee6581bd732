"""Blends beside Caruana's selection (ensemble/blends.py): optimised weights, stacking, the out-of-fit comparison
that chooses between them, and `python -m ensemble --select --blend`."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ensemble.blending import MEANS, blend, vote_space
from ensemble.blends import (
    BLENDS,
    FITTERS,
    FOLDS,
    STACKED_MEMBERS,
    WEIGHED_MEMBERS,
    BlendSettings,
    OutOfFit,
    WeightedBlend,
    best_members,
    choose_blend,
    compare_blends,
    fit_stack,
    fold_of_rows,
    log_loss_and_gradient,
    optimal_weights,
    out_of_fit,
)
from ensemble_helpers import make_run, noisy_probs, read_submission, run_cli


def library(seed: int = 0, rows: int = 200, classes: int = 3, skills=(2.5, 1.5, 0.5, 0.0)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=rows)
    return [noisy_probs(rng, labels, classes, skill) for skill in skills], labels


@pytest.mark.parametrize("name", BLENDS)
def test_every_blend_fits_again_to_the_same_predictions(name):
    probs, labels = library()
    first, again = (FITTERS[name](probs, labels, 3, BlendSettings()).combine(probs) for _ in range(2))
    assert np.array_equal(first, again)
    assert np.allclose(first.sum(axis=1), 1) and first.shape == (200, 3)
    outside = [out_of_fit(FITTERS[name], probs, labels, 3, BlendSettings()) for _ in range(2)]
    assert np.array_equal(*outside)


class Spy:
    """A blend that remembers the rows it was fitted on (each row's id is its first member's first column) and
    checks that it is never asked to predict one of them."""

    def __init__(self, probs, labels, num_classes, settings):
        self.seen = set(probs[0][:, 0].tolist())

    def combine(self, probs):
        assert not self.seen & set(probs[0][:, 0].tolist()), "a row predicted by a blend fitted on it"
        return np.full((len(probs[0]), 3), 1 / 3)


def test_out_of_fit_predicts_every_row_from_a_blend_that_never_saw_it():
    probs, labels = library()
    probs[0] = probs[0].copy()
    probs[0][:, 0] = np.arange(len(labels))
    out = out_of_fit(Spy, probs, labels, 3, BlendSettings())
    assert np.allclose(out, 1 / 3)


def test_folds_are_seeded_and_stratified():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    fold = fold_of_rows(labels)
    assert np.array_equal(fold, fold_of_rows(labels)) and set(fold.tolist()) == set(range(FOLDS))
    for number in range(FOLDS):
        assert np.bincount(labels[fold == number]).tolist() == [10, 6, 4]
    assert len(set(fold_of_rows(np.array([0] * 9 + [1])).tolist())) == FOLDS  # a class of one row: plain folds


@pytest.mark.parametrize("mean", MEANS)
def test_the_log_loss_gradient_is_the_derivative(mean):
    probs, labels = library(rows=40)
    votes = np.stack([vote_space(p, mean) for p in probs])
    weights, step = np.array([0.4, 0.3, 0.2, 0.1]), 1e-6
    _, gradient = log_loss_and_gradient(weights, votes, labels, mean)
    for m in range(len(weights)):
        moved = weights.copy()
        moved[m] += step
        numeric = (log_loss_and_gradient(moved, votes, labels, mean)[0]
                   - log_loss_and_gradient(weights, votes, labels, mean)[0]) / step
        assert gradient[m] == pytest.approx(numeric, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("mean", MEANS)
def test_optimal_weights_lie_on_the_simplex_and_beat_equal_weights(mean):
    probs, labels = library()
    weights = optimal_weights(probs, labels, mean)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1) and np.argmax(weights) == 0  # the skilled one
    votes = np.stack([vote_space(p, mean) for p in probs])
    equal = log_loss_and_gradient(np.full(4, 0.25), votes, labels, mean)[0]
    assert log_loss_and_gradient(weights, votes, labels, mean)[0] < equal
    assert np.allclose(WeightedBlend(tuple(weights), mean).combine(probs), blend(probs, weights, mean))


def test_fitted_blends_take_the_best_members_only():
    probs, labels = library(skills=np.linspace(0, 3, WEIGHED_MEMBERS + 8))
    weighed = best_members(probs, labels, 3, "macro_f1", WEIGHED_MEMBERS)
    assert len(weighed) == WEIGHED_MEMBERS and 0 not in weighed and len(probs) - 1 in weighed
    weights = FITTERS["weights"](probs, labels, 3, BlendSettings()).weights
    assert all(weights[i] == 0 for i in range(len(probs)) if i not in weighed)
    stacked = fit_stack(probs, labels, 3, BlendSettings())
    assert stacked.members == tuple(best_members(probs, labels, 3, "macro_f1", STACKED_MEMBERS))
    assert len(stacked.members) == STACKED_MEMBERS


def test_stacking_gives_every_class_a_column_even_one_its_rows_lack():
    probs, labels = library()
    kept = labels < 2
    stacked = fit_stack([p[kept] for p in probs], labels[kept], 3, BlendSettings())
    out = stacked.combine(probs)
    assert out.shape == (200, 3) and np.all(out[:, 2] == 0) and np.allclose(out.sum(axis=1), 1)


def test_memorising_noise_scores_well_in_fit_and_at_chance_out_of_fit():
    """Why the blends are compared out of fit: stacking 16 pure-noise members fits its own rows far better than
    chance, and predicts the rows it did not see at chance."""
    probs, labels = library(seed=2, rows=150, skills=[0.0] * 16)
    settings = BlendSettings(metric="accuracy")
    in_fit = FITTERS["stack"](probs, labels, 3, settings).combine(probs)
    outside = compare_blends(probs, labels, 3, settings)["stack"]
    assert (np.argmax(in_fit, axis=1) == labels).mean() > 0.6 and outside.score < 0.45


@pytest.mark.parametrize("requested, expected", [("caruana", "caruana"), ("stack", "stack"), ("best", "weights")])
def test_choice_is_the_request_or_the_best_out_of_fit_score(requested, expected):
    scores = {"caruana": OutOfFit(0.80, 0.6), "weights": OutOfFit(0.85, 0.5), "stack": OutOfFit(0.85, 0.7)}
    assert choose_blend(scores, requested) == expected
    assert choose_blend({}, "best") == "caruana"


VALID = [f"p{i // 7:03d}/img{i % 7}.jpg" for i in range(140)]
EVAL = [f"e{i}.jpg" for i in range(30)]


def experiment(tmp_path, skills=(3.0, 1.5, 0.8, 0.0)):
    rng = np.random.default_rng(7)
    labels, truth = rng.integers(0, 4, size=len(VALID)), rng.integers(0, 4, size=len(EVAL))
    exp = tmp_path / "exp"
    for n, skill in enumerate(skills):
        make_run(exp, "multi", "m", f"T{n}", {1: (EVAL, noisy_probs(rng, truth, 4, skill), VALID,
                                                   noisy_probs(rng, labels, 4, skill), labels)})
    return exp


def comparison(stdout: str) -> dict[str, tuple[float, float]]:
    return {name: (float(score), float(loss)) for name, score, loss in
            re.findall(r"^  (caruana|weights|stack) +([\d.]+) / ([\d.]+)", stdout, re.M)}


@pytest.mark.parametrize("requested", [*BLENDS, "best"])
def test_select_prints_the_three_blends_side_by_side_and_uses_the_chosen_one(tmp_path, capsys, requested):
    exp = experiment(tmp_path)
    code, stdout, err = run_cli(["--from", exp, "--select", "--blend", requested, "-o", tmp_path / "sub.csv"],
                                capsys)
    assert code == 0, err
    scores = comparison(stdout)
    assert set(scores) == set(BLENDS)
    assert f"multi: blends out of fit ({FOLDS}-fold over 140 validation rows, fold seed 0): macro_f1 / log-loss" \
        in stdout
    used = re.findall(r"^  (\w+) .*<- used \(--blend (\w+)\)$", stdout, re.M)
    chosen = max(scores, key=lambda n: (scores[n][0], -scores[n][1], -BLENDS.index(n))) if requested == "best" \
        else requested
    assert used == [(chosen, requested)]
    assert len(read_submission(tmp_path / "sub.csv")) == len(EVAL)


def test_select_alone_is_caruanas_selection_without_the_comparison(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, stdout, _ = run_cli(["--from", exp, "--select", "-o", tmp_path / "default.csv"], capsys)
    assert code == 0 and "multi: ensemble macro_f1" in stdout and not comparison(stdout)
    code, stdout, _ = run_cli(["--from", exp, "--select", "--blend", "caruana", "-o", tmp_path / "caruana.csv"],
                              capsys)
    assert "<- used (--blend caruana)" in stdout
    assert (tmp_path / "default.csv").read_bytes() == (tmp_path / "caruana.csv").read_bytes()


def test_blend_without_select_is_refused_in_one_line(tmp_path, capsys):
    exp = experiment(tmp_path)
    code, _, err = run_cli(["--from", exp, "--blend", "stack", "-o", tmp_path / "sub.csv"], capsys)
    assert code == 2 and err.strip().endswith("--blend stack fits a blend on the validation CSVs: give --select too")
