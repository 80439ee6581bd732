"""The training passes: what they report, the precision choices, and the mixed-precision code paths."""
import pytest
import torch

from harness.data.transforms import Normalizer
from harness.train.passes import TrainingDiverged, TrainStep, predict, train_one_epoch
from harness.train.precision import Precision, resolve_precision
from models import create_model

HEADS = {"multi": 3}


def batches(count=3, size=8, classes=3, side=32):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (size, side, side, 3), dtype=torch.uint8, generator=generator),
             torch.randint(0, classes, (size, 1), generator=generator)) for _ in range(count)]


def setup(precision):
    torch.manual_seed(0)
    model = create_model("resnet10t", HEADS)
    model = model.to(memory_format=torch.channels_last if precision.channels_last else torch.preserve_format)
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, precision.device, precision.channels_last)
    return model, normalize, torch.optim.SGD(model.parameters(), lr=0.01), {"multi": torch.nn.CrossEntropyLoss()}


@pytest.mark.parametrize("precision", [Precision(torch.device("cpu")),
                                       Precision(torch.device("cpu"), torch.bfloat16, channels_last=True)],
                         ids=["fp32", "bf16+channels_last"])
def test_train_and_predict_report_what_they_saw(precision):
    model, normalize, optimizer, criterion = setup(precision)
    data = batches()
    before = [p.detach().clone() for p in model.parameters()]
    result = train_one_epoch(model, data, TrainStep(HEADS, criterion, optimizer, normalize, precision,
                                                   precision.grad_scaler()))
    assert result.images == 24 and 0 <= result.accuracy <= 1 and result.loss > 0 and result.seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight moved"
    prediction = predict(model, data, HEADS, normalize, precision, criterion)
    probs = prediction.probs["multi"]
    assert probs.shape == (24, 3)
    assert torch.allclose(torch.tensor(probs.sum(1)), torch.ones(24, dtype=torch.float64), atol=1e-5)
    labels = torch.cat([y for _, y in data])[:, 0].numpy()
    assert prediction.accuracy["multi"] == pytest.approx((probs.argmax(1) == labels).mean())


def test_prediction_of_unlabelled_images_has_no_loss():
    precision = Precision(torch.device("cpu"))
    model, normalize, _, criterion = setup(precision)
    unlabelled = [(images, torch.full((len(images), 1), -1)) for images, _ in batches()]
    prediction = predict(model, unlabelled, HEADS, normalize, precision, criterion)
    assert prediction.loss is None and prediction.accuracy == {} and prediction.probs["multi"].shape == (24, 3)


def test_several_heads_train_on_the_sum_of_their_losses():
    heads = {"mask": 3, "gender": 2}
    torch.manual_seed(0)
    model = create_model("resnet10t", heads)
    precision = Precision(torch.device("cpu"))
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, precision.device)
    generator = torch.Generator().manual_seed(1)
    data = [(torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=generator),
             torch.stack([torch.randint(0, 3, (8,), generator=generator),
                          torch.randint(0, 2, (8,), generator=generator)], 1)) for _ in range(2)]
    criteria = {"mask": torch.nn.CrossEntropyLoss(), "gender": torch.nn.CrossEntropyLoss()}
    prediction = predict(model, data, heads, normalize, precision, criteria)
    with torch.inference_mode():
        model.eval()
        logits = [model(normalize(images)) for images, _ in data]
    by_hand = sum(float(criteria["mask"](out["mask"], y[:, 0]) + criteria["gender"](out["gender"], y[:, 1])) * 8
                  for out, (_, y) in zip(logits, data)) / 16
    assert prediction.loss == pytest.approx(by_hand, rel=1e-5)
    assert set(prediction.accuracy) == {"mask", "gender"}
    assert prediction.probs["gender"].shape == (16, 2)
    result = train_one_epoch(model, data, TrainStep(heads, criteria, torch.optim.SGD(model.parameters(), lr=0.01),
                                                    normalize, precision))
    assert result.images == 16 and result.loss > 0


def test_a_non_finite_loss_stops_training_at_once():
    precision = Precision(torch.device("cpu"))
    model, normalize, _, criterion = setup(precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)  # the first step blows the weights up
    seen = []
    with pytest.raises(TrainingDiverged, match="the training loss became (nan|inf) by batch 2"):
        train_one_epoch(model, batches(count=5), TrainStep(HEADS, criterion, optimizer, normalize, precision),
                        on_batch=lambda batch, images: seen.append(batch))
    assert seen == [1], "it stopped at the first non-finite batch"


def test_fp16_uses_a_grad_scaler_and_bf16_does_not():
    assert Precision(torch.device("cpu"), torch.float16).grad_scaler() is not None
    assert Precision(torch.device("cpu"), torch.bfloat16).grad_scaler() is None
    assert Precision(torch.device("cpu")).grad_scaler() is None


@pytest.mark.parametrize("amp, channels_last, native, expected", [
    ("auto", "auto", True, (torch.bfloat16, True)),   # AVX-512 BF16 / AMX: bf16 pays, with NHWC
    ("auto", "auto", False, (None, False)),           # emulated bf16 is slower than fp32
    ("bf16", "auto", False, (torch.bfloat16, True)),  # asked for explicitly
    ("off", "auto", True, (None, False)),
    ("fp16", "auto", True, (None, False)),            # fp16 autocast is for cuda only
    ("auto", "false", True, (torch.bfloat16, False)),
    ("off", "true", False, (None, True)),
])
def test_cpu_precision_choices(amp, channels_last, native, expected):
    precision = resolve_precision(torch.device("cpu"), amp, channels_last, cpu_bf16=native)
    assert (precision.amp_dtype, precision.channels_last) == expected
    assert precision.reason and ("native bf16" in precision.reason) == (amp == "auto")


def test_native_bf16_is_read_from_the_cpu_flags():
    from harness.train.precision import cpu_has_native_bf16

    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert cpu_has_native_bf16("flags\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags\t: fpu sse avx2 avx512f\n")
    assert not cpu_has_native_bf16("")


def test_the_allocator_keeps_freed_memory_where_glibc_runs():
    import platform

    from harness.train.allocator import keep_freed_memory

    assert keep_freed_memory() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
