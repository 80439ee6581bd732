"""cost.json's time measure: how many batches a timed pass takes, and that no more are read than it takes."""

import pytest
import torch

from harness.train import cost


@pytest.mark.parametrize(("one_batch_s", "batch_images", "wanted"), [
    (0.2, 32, 3),      # a CPU at 224 px: a few batches fill half a second
    (0.001, 32, 8),    # a GPU: MAX_IMAGES (256) images, not 500 batches
    (0.001, 100, 3),   # MAX_IMAGES rounds up to whole batches
    (2.0, 32, 1),      # a batch slower than the pass: one batch, never none
    (0.0, 32, 8),      # a clock that saw nothing: the most allowed
], ids=["cpu", "gpu", "whole-batches", "slow", "zero-time"])
def test_a_pass_takes_the_batches_that_fill_its_time_within_the_image_bound(one_batch_s, batch_images, wanted):
    assert cost.batches_wanted(one_batch_s, batch_images, pass_s=0.5, max_images=256) == wanted


class CountingLoader:
    def __init__(self, batches: int, size: int) -> None:
        self.batches, self.size, self.read = batches, size, 0

    def __iter__(self):
        for _ in range(self.batches):
            self.read += 1
            yield torch.zeros(self.size, 3, 4, 4), torch.zeros(self.size, dtype=torch.long)


@pytest.mark.parametrize(("seconds_per_batch", "available", "held"), [(0.2, 20, 3), (0.001, 20, 8), (0.001, 5, 5)],
                         ids=["slow-device", "fast-device", "short-loader"])
def test_only_the_batches_a_pass_takes_are_read_from_the_loader(monkeypatch, seconds_per_batch, available, held):
    monkeypatch.setattr(cost, "pass_seconds", lambda predictor, batches: seconds_per_batch * len(batches))
    warmed = []
    loader = CountingLoader(available, 32)
    batches = cost.batches_to_time(warmed.append, loader, pass_s=0.5, max_images=256)
    assert len(batches) == held and loader.read == held
    assert len(warmed) == 1 and len(warmed[0]) == 1, "the first batch warms the predictor once before it is timed"


def test_an_empty_loader_gives_nothing_to_time():
    assert cost.batches_to_time(lambda batches: None, CountingLoader(0, 32)) == []
