"""--class_weights and --sampler weighted: the weights by hand, and the sampler's draws and its resume."""
import numpy as np
import pytest
import torch

from harness.data.batches import ImageSet, make_loader
from harness.train.class_balance import class_counts, class_weights, sample_weights

# 6 images of class 0, 3 of class 1, 1 of class 2, none of class 3.
LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])


def test_inverse_weights_by_hand():
    """sklearn's 'balanced': N / (C n_k) with C = 3 present classes: 10/18, 10/9, 10/3, and 0 for the absent one."""
    assert np.allclose(class_weights(LABELS, 4, "inverse"), [10 / 18, 10 / 9, 10 / 3, 0])


def test_sqrt_inverse_weights_by_hand():
    """c / sqrt(n_k), c such that sum_k n_k w_k = N: c = 10 / (6/sqrt6 + 3/sqrt3 + 1) = 10 / (sqrt6 + sqrt3 + 1)."""
    c = 10 / (np.sqrt(6) + np.sqrt(3) + 1)
    assert np.allclose(class_weights(LABELS, 4, "sqrt_inverse"), [c / np.sqrt(6), c / np.sqrt(3), c, 0])


@pytest.mark.parametrize("mode", ["inverse", "sqrt_inverse"])
def test_the_mean_weight_per_image_is_one(mode):
    weights = class_weights(LABELS, 4, mode)
    assert np.isclose(weights[LABELS].mean(), 1.0)
    assert class_weights(LABELS, 4, "none") is None


def test_counts_refuse_labels_outside_the_classes():
    assert class_counts(LABELS, 4).tolist() == [6, 3, 1, 0]
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        class_counts(LABELS, 2)


def test_sample_weights_are_one_over_the_class_count():
    assert np.allclose(sample_weights(LABELS), [1 / 6] * 6 + [1 / 3] * 3 + [1.0])
    # several heads: the unit is the combination of their labels
    rows = np.array([[0, 1], [0, 1], [0, 0], [1, 1]])
    assert np.allclose(sample_weights(rows), [0.5, 0.5, 1.0, 1.0])


class Tiny:
    """Images 0..N-1 whose pixel is their index: a batch says which images were drawn."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 1, 1), i, dtype=np.uint8)


def drawn_labels(loader) -> np.ndarray:
    return np.concatenate([labels[:, 0].numpy() for _, labels in loader])


def test_the_weighted_sampler_draws_classes_evenly_and_len_train_per_epoch():
    labels = np.repeat([0, 1, 2], [90, 9, 1])
    dataset = ImageSet(Tiny(len(labels)), np.arange(len(labels)), labels)
    loader = make_loader(dataset, 10, True, 0, seed=4, pin_memory=False, sample_weights=sample_weights(labels))
    draws = np.concatenate([drawn_labels(loader) for _ in range(30)])
    assert len(draws) == 30 * len(labels)
    shares = np.bincount(draws, minlength=3) / len(draws)
    assert np.allclose(shares, 1 / 3, atol=0.03), shares  # the shuffle would give 0.90, 0.09, 0.01


def test_the_sampler_follows_the_loaders_generator():
    """The checkpoint restores the loader's generator (harness/train/checkpoint.py): the sampler must draw from
    it, so a resumed epoch draws the images an uninterrupted one would."""
    labels = np.repeat([0, 1], [20, 4])
    dataset = ImageSet(Tiny(len(labels)), np.arange(len(labels)), labels)
    loader = make_loader(dataset, 4, True, 0, seed=7, pin_memory=False, sample_weights=sample_weights(labels))
    drawn_labels(loader)
    saved = loader.generator.get_state()
    second = [images.flatten().tolist() for images, _ in loader]
    loader.generator.set_state(saved)
    assert [images.flatten().tolist() for images, _ in loader] == second
    torch.manual_seed(0)  # the global generator plays no part
    loader.generator.set_state(saved)
    assert [images.flatten().tolist() for images, _ in loader] == second
