"""Batches as the loaders deliver them: whole, in order, and untouched while the consumer may still hold them."""
import numpy as np
import pytest
import torch

from harness.data.batches import DecodedImages, ImageSet, make_loader
from harness.data.image_cache import cached_images
from harness.data.layouts import load_train


@pytest.fixture(scope="module")
def cached(demo_dir):
    data = load_train(demo_dir)
    return data, cached_images(data.root, data.paths, 24, 0.8, demo_dir.parent / "cache-images")


@pytest.mark.parametrize("workers", [0, 2])
def test_every_batch_is_whole_and_the_previous_one_is_intact(cached, workers):
    """Workers reuse shared buffers: the current and the previous batch must still hold their own images."""
    data, images = cached
    indices = np.arange(len(data.paths))
    labels = data.labels["multi"]
    loader = make_loader(ImageSet(images, indices, labels), batch_size=5, shuffle=False, num_workers=workers,
                         seed=0, pin_memory=False)
    for _epoch in range(2):
        previous, start = None, 0
        for batch, batch_labels in loader:
            expected = torch.from_numpy(np.array(images[start:start + len(batch)]))
            assert torch.equal(batch, expected)
            assert batch_labels[:, 0].tolist() == labels[start:start + len(batch)].tolist()
            if previous is not None:
                assert torch.equal(previous[0], previous[1]), "a held batch was overwritten"
            previous = (batch, expected)
            start += len(batch)
        assert start == len(indices)


def test_decoded_and_cached_sources_give_the_same_batches(cached):
    data, images = cached
    indices = np.arange(12)
    decoded = DecodedImages(data.root, data.paths, 24, 0.8)
    from_disk = ImageSet(decoded, indices, None).__getitems__(list(range(12)))
    from_cache = ImageSet(images, indices, None).__getitems__(list(range(12)))
    assert torch.equal(from_disk[0], from_cache[0])
    assert from_disk[1].tolist() == [[-1]] * 12
