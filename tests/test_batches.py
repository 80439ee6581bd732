"""Batches as the loaders deliver them: whole, in order, and untouched while the consumer may still hold them."""
from pathlib import Path

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


def epochs_of(loader, count=2):
    return [[(batch.clone(), labels.clone()) for batch, labels in loader] for _ in range(count)]


def test_workers_started_early_give_the_epochs_a_late_start_gives(cached):
    """A trial starts its training workers before it builds the model: the shuffled, augmented batches of every
    epoch are those the workers would have made had the first epoch started them."""
    from harness.data.transforms import TrainAugment

    data, images = cached
    indices, labels = np.arange(len(data.paths)), data.labels["multi"]

    def loader():
        return make_loader(ImageSet(images, indices, labels, TrainAugment(7)), batch_size=6, shuffle=True,
                           num_workers=2, seed=3, pin_memory=False)

    early = loader()
    early.start()
    started, late = epochs_of(early), epochs_of(loader())
    for epoch_early, epoch_late in zip(started, late, strict=True):
        assert len(epoch_early) == len(epoch_late)
        for (batch_a, labels_a), (batch_b, labels_b) in zip(epoch_early, epoch_late):
            assert torch.equal(batch_a, batch_b) and torch.equal(labels_a, labels_b)


@pytest.mark.parametrize("workers, in_trial_process", [(1, False), (0, True)])
def test_the_augmentation_is_built_where_it_runs(demo_dir, tmp_path, workers, in_trial_process):
    """With loader workers the trial's own process never imports albumentations (a third of a second and 50 MB of
    its start-up); without them it augments, so it must."""
    import subprocess
    import sys

    code = ("import sys\nimport numpy as np\nfrom harness.data.batches import ImageSet, make_loader\n"
            "from harness.data.image_cache import cached_images\nfrom harness.data.layouts import load_train\n"
            "from harness.data.transforms import TrainAugment\n"
            f"data = load_train({str(demo_dir)!r})\n"
            f"images = cached_images(data.root, data.paths, 24, 0.8, {str(tmp_path)!r})\n"
            "loader = make_loader(ImageSet(images, np.arange(len(data.paths)), data.labels['multi'], TrainAugment(0)),"
            f" batch_size=8, shuffle=True, num_workers={workers}, seed=0, pin_memory=False)\n"
            "batches = sum(1 for _ in loader)\nprint(batches, 'albumentations' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == str(in_trial_process)


class Niceness(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        import os

        return os.nice(0)


def test_loader_workers_run_at_the_niceness_asked():
    """--loader_nice: the workers yield the cores to the training threads; the trial's own process keeps its own."""
    import functools
    import os

    from harness.data.batches import seed_worker

    loader = torch.utils.data.DataLoader(Niceness(), batch_size=2, num_workers=1,
                                         worker_init_fn=functools.partial(seed_worker, nice=5))
    own = os.nice(0)
    assert next(iter(loader)).tolist() == [min(own + 5, 19)] * 2
    assert os.nice(0) == own


@pytest.mark.parametrize(("device", "eval_batch"), [("cpu", 32), ("cuda", 64)])
def test_prediction_batches_are_doubled_on_a_gpu_only(device, eval_batch):
    """A CPU gains no speed from bigger prediction batches and its peak RSS grows by their activations."""
    from harness.fit.setup import loader_settings
    from harness.params import parse_params

    settings = loader_settings(parse_params(["--batch_size", "32", "--data_dir", "x"], {}), torch.device(device))
    assert settings.batch_size == 32 and settings.eval_batch_size == eval_batch


def test_the_validation_and_eval_loaders_take_the_prediction_batch(demo_dir):
    from harness.data.layouts import load_eval
    from harness.data.loaders import LoaderSettings, build_loaders

    data = load_train(demo_dir)
    indices = np.arange(len(data.paths))
    settings = LoaderSettings(batch_size=4, num_workers=0, seed=0, img_size=16, crop=0.8, cache=False, cache_dir="",
                              pin_memory=False, eval_batch_size=6)
    loaders = build_loaders(data, load_eval(demo_dir), data.labels["multi"][:, None], indices[:20], indices[20:40],
                            settings)
    assert loaders.train.batch_size == 4 and loaders.val.batch_size == 6 and loaders.eval.batch_size == 6
