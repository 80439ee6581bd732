import numpy as np
import pytest
import torch

from harness.data.opencv import cv2
from harness.data.transforms import Normalizer, center_crop, decode, prepare, train_augment
from harness.errors import UserError


def test_center_crop_keeps_the_middle():
    image = np.arange(10 * 20).reshape(10, 20, 1)
    cropped = center_crop(image, 0.5)
    assert cropped.shape[:2] == (5, 10)
    assert cropped[0, 0, 0] == image[2, 5, 0]
    assert center_crop(image, 1.0) is image


def test_prepare_gives_square_uint8():
    image = np.random.default_rng(0).integers(0, 255, (512, 384, 3), dtype=np.uint8)
    prepared = prepare(image, 64, 0.8)
    assert prepared.shape == (64, 64, 3) and prepared.dtype == np.uint8 and prepared.flags.c_contiguous


def test_augmentation_keeps_shape_and_varies():
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    augment = train_augment(seed=0)
    outputs = [augment(image=image)["image"] for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outputs)
    assert any(not np.array_equal(o, image) for o in outputs)


@pytest.mark.parametrize("channels_last", [False, True])
def test_normalizer_matches_the_formula(channels_last):
    batch = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = Normalizer(mean, std, torch.device("cpu"), channels_last)(batch)
    expected = (batch.permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / \
        torch.tensor(std).view(1, 3, 1, 1)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, expected, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_undecodable_image_is_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="broken.jpg cannot be decoded as an image"):
        decode(bad)


def test_a_truncated_jpeg_is_named_in_the_warning(tmp_path, caplog):
    import logging

    from harness.data.transforms import decode, file_edges, is_truncated_jpeg

    whole = tmp_path / "whole.jpg"
    small = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    cv2.imwrite(str(whole), cv2.resize(small, (384, 512)))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:-3000])  # the end of the scan is gone
    assert not is_truncated_jpeg(*file_edges(whole)) and is_truncated_jpeg(*file_edges(cut))
    with caplog.at_level(logging.WARNING):
        decode(whole)
        assert not caplog.records
        assert decode(cut).shape == (512, 384, 3)
    assert f"{cut} is a truncated JPEG" in caplog.text
