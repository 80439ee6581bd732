"""--compile: on only where asked or where a trial is long enough, and a compiled model keeps its weights' names."""
import pytest

from harness.train.compiled import COMPILE_FROM_EPOCHS, compile_model, wants_compile
from models import create_model


@pytest.mark.parametrize("mode, epochs, device, expected", [
    ("off", 100, "cuda", False), ("on", 1, "cpu", True),
    ("auto", 2, "cuda", False),  # the tests' and the demo's short trials never compile
    ("auto", COMPILE_FROM_EPOCHS - 1, "cuda", False), ("auto", COMPILE_FROM_EPOCHS, "cuda", True),
    ("auto", 100, "cpu", False)])  # measured on a CPU: no faster epochs to pay for the compilation
def test_compile_is_on_where_it_pays(mode, epochs, device, expected):
    assert wants_compile(mode, epochs, device) is expected


def test_a_compiled_model_keeps_its_weights_names():
    """Checkpoints, resume, PBT and predict.py read the weights by name."""
    model = create_model("resnet10t", {"multi": 3})
    names = list(model.state_dict())
    assert list(compile_model(model).state_dict()) == names
