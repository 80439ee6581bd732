"""The training passes: what they report, the precision choices, and the mixed-precision code paths."""
import sys
from pathlib import Path

import pytest
import torch

from harness.training import Precision, predict, resolve_precision, train_one_epoch
from harness.transforms import Normalizer
from models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def batches(count=3, size=8, classes=3, side=32):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (size, side, side, 3), dtype=torch.uint8, generator=generator),
             torch.randint(0, classes, (size,), generator=generator)) for _ in range(count)]


def setup(precision):
    torch.manual_seed(0)
    model = create_model("resnet10t", 3)
    model = model.to(memory_format=torch.channels_last if precision.channels_last else torch.preserve_format)
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, precision.device, precision.channels_last)
    return model, normalize, torch.optim.SGD(model.parameters(), lr=0.01), torch.nn.CrossEntropyLoss()


@pytest.mark.parametrize("precision", [Precision(torch.device("cpu")),
                                       Precision(torch.device("cpu"), torch.bfloat16, channels_last=True)],
                         ids=["fp32", "bf16+channels_last"])
def test_train_and_predict_report_what_they_saw(precision):
    model, normalize, optimizer, criterion = setup(precision)
    data = batches()
    before = [p.detach().clone() for p in model.parameters()]
    result = train_one_epoch(model, data, criterion, optimizer, normalize, precision, precision.grad_scaler())
    assert result.images == 24 and 0 <= result.accuracy <= 1 and result.loss > 0 and result.seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight moved"
    prediction = predict(model, data, normalize, precision, criterion)
    assert prediction.probs.shape == (24, 3)
    assert torch.allclose(torch.tensor(prediction.probs.sum(1)), torch.ones(24, dtype=torch.float64), atol=1e-5)
    labels = torch.cat([y for _, y in data]).numpy()
    assert prediction.accuracy == pytest.approx((prediction.probs.argmax(1) == labels).mean())


def test_prediction_of_unlabelled_images_has_no_loss():
    precision = Precision(torch.device("cpu"))
    model, normalize, _, criterion = setup(precision)
    unlabelled = [(images, torch.full((len(images),), -1)) for images, _ in batches()]
    prediction = predict(model, unlabelled, normalize, precision, criterion)
    assert prediction.loss is None and prediction.accuracy is None and prediction.probs.shape == (24, 3)


def test_fp16_uses_a_grad_scaler_and_bf16_does_not():
    assert Precision(torch.device("cpu"), torch.float16).grad_scaler() is not None
    assert Precision(torch.device("cpu"), torch.bfloat16).grad_scaler() is None
    assert Precision(torch.device("cpu")).grad_scaler() is None


@pytest.mark.parametrize("amp, channels_last, expected", [
    ("auto", "auto", (None, False)),   # a CPU trains in fp32: autocast there is slower
    ("bf16", "auto", (None, False)),
    ("auto", "true", (None, True)),
])
def test_cpu_precision_choices(amp, channels_last, expected):
    precision = resolve_precision(torch.device("cpu"), amp, channels_last)
    assert (precision.amp_dtype, precision.channels_last) == expected


def test_benchmark_precision_table_runs(monkeypatch):
    """The GPU part of the speed benchmark, exercised on the CPU at a tiny size so that it cannot rot unseen."""
    from bench_trial_speed import precision_table

    rows = precision_table(["resnet10t"], torch.device("cpu"), img_size=32, batch_size=4, steps=2,
                           amp_dtype=torch.bfloat16)
    assert rows[0]["model"] == "resnet10t"
    assert all(rows[0][key] > 0 for key in ("fp32", "amp", "amp+channels_last", "amp_speedup"))


def test_the_allocator_keeps_freed_memory_where_glibc_runs():
    import platform

    from harness.allocator import keep_freed_memory

    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
