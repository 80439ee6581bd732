"""Caruana ensemble selection: a hand-traced run, the metric's role, and the guarantee that the chosen ensemble
scores at least as well as the best single member on validation."""
from __future__ import annotations

import numpy as np
import pytest

from ensemble.blending import blend, vote
from ensemble.selection import METRICS, select_ensemble
from ensemble_helpers import noisy_probs

LABELS = np.array([0, 0, 1, 1])
A = np.array([[.9, .1], [.9, .1], [.2, .8], [.6, .4]])  # right on rows 0-2
B = np.array([[.9, .1], [.9, .1], [.6, .4], [.2, .8]])  # right on rows 0, 1, 3
C = np.array([[.4, .6]] * 4)                             # always says 1


def test_hand_traced_selection():
    # Round 1: A .75, B .75, C .5 -> A (earliest of the tie). Round 2: A+A .75, A+B 1.0, A+C .75 -> B.
    # Later rounds cannot beat 1.0, so the kept prefix is [A, B].
    selection = select_ensemble([A, B, C], LABELS, rounds=5, metric="accuracy")
    np.testing.assert_array_equal(selection.counts, [1, 1, 0])
    assert selection.score == 1.0
    np.testing.assert_allclose(selection.single_scores, [.75, .75, .5])
    assert selection.trace[:2] == (.75, 1.0)
    assert selection.rounds == 2 and selection.best_single == 0


def test_one_round_is_the_best_single_member():
    selection = select_ensemble([C, B, A], LABELS, rounds=1, metric="accuracy")
    np.testing.assert_array_equal(selection.counts, [0, 1, 0])


# 8 zeros and 2 ones: "always 0" has accuracy .8 but macro-F1 (.889 + 0) / 2 = .444; the other finds both ones at
# the cost of 3 zeros: accuracy .7, macro-F1 (10/13 + 4/7) / 2 = .670.
IMBALANCED = np.array([0] * 8 + [1] * 2)
ALWAYS_ZERO = np.array([[.9, .1]] * 10)
FINDS_ONES = np.array([[.9, .1]] * 5 + [[.1, .9]] * 5)


@pytest.mark.parametrize("metric, chosen, score", [("accuracy", 0, .8), ("macro_f1", 1, (10 / 13 + 4 / 7) / 2)])
def test_the_metric_decides_the_choice(metric, chosen, score):
    selection = select_ensemble([ALWAYS_ZERO, FINDS_ONES], IMBALANCED, rounds=1, metric=metric)
    assert selection.best_single == chosen
    assert selection.score == pytest.approx(score)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("mean", ["arithmetic", "geometric"])
def test_selection_beats_or_ties_the_best_single_member(seed, mean):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 6))
    labels = rng.integers(0, classes, size=300)
    candidates = [noisy_probs(rng, labels, classes, skill) for skill in rng.uniform(0, 2.5, size=12)]
    selection = select_ensemble(candidates, labels, rounds=15, mean=mean)
    singles = [METRICS["macro_f1"](labels, vote(c), classes) for c in candidates]
    assert selection.score >= max(singles)
    np.testing.assert_allclose(selection.single_scores, singles)
    # The reported score is the score of the blend the submission will use (weights = pick counts).
    blended = blend(candidates, selection.counts.astype(float), mean)
    assert selection.score == pytest.approx(METRICS["macro_f1"](labels, vote(blended), classes))
    assert selection.score == max(selection.trace) and 1 <= selection.rounds <= 15


def test_the_kept_prefix_is_the_shortest_of_equal_scores():
    selection = select_ensemble([A, A], LABELS, rounds=10, metric="accuracy")
    assert selection.rounds == 1 and selection.counts.tolist() == [1, 0]
