import json
from pathlib import Path

import pytest
import torch

from harness.errors import UserError
from models import MODELS, create_model, set_fast_swish

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODELS = json.loads((ROOT / "search_space.demo.json").read_text())["model"]["_value"]


@pytest.mark.parametrize("name", list(MODELS) + DEMO_MODELS)
@pytest.mark.parametrize("num_classes", [3, 18])
def test_every_model_builds_and_runs_at_a_tiny_size(name, num_classes):
    model = create_model(name, num_classes, pretrained=False).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


def test_any_timm_name_works_beyond_the_registry():
    assert create_model("resnet10t", 4).fc.out_features == 4


def test_unknown_names_fail_clearly():
    with pytest.raises(UserError, match="unknown model 'notanet': expected one of Efficientnet_b4"):
        create_model("notanet", 3)


@pytest.mark.parametrize("name", ["ecaresnet50t", "Efficientnet_b4"])
def test_pretrained_weights_load_from_a_local_file_with_the_classifier_resized(name, tmp_path):
    """The path a machine without internet takes: ImageNet-shaped weights in, a task-sized classifier out."""
    torch.manual_seed(0)
    imagenet = create_model(name, 1000, pretrained=False)
    weights = tmp_path / "weights.pth"
    torch.save(imagenet.state_dict(), weights)
    model = create_model(name, 3, pretrained=True, weights=str(weights))
    ours, theirs = model.state_dict(), imagenet.state_dict()
    shared = [k for k in ours if ours[k].shape == theirs[k].shape]
    assert len(shared) > 100
    assert all(torch.equal(ours[k], theirs[k]) for k in shared if not k.startswith(("fc.", "_fc.")))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


@pytest.mark.parametrize("name", ["ecaresnet50t", "Efficientnet_b4"])
def test_weights_that_cannot_be_had_give_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=f"weights file {tmp_path / 'missing.pth'} for {name} not found"):
        create_model(name, 3, pretrained=True, weights=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"not": torch.zeros(1)}, wrong)
    expected = f"(does not fit {name}|weights for {name} could not be loaded).*--pretrained false"
    with pytest.raises(UserError, match=expected):
        create_model(name, 3, pretrained=True, weights=str(wrong))


def test_offline_download_failure_says_how_to_supply_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as caught:
        create_model("dm_nfnet_f0", 3, pretrained=True)
    message = str(caught.value)
    assert "timm/dm_nfnet_f0" in message and "--weights PATH" in message and "\n" not in message


def test_efficientnet_trains_with_the_plain_swish_when_asked():
    from efficientnet_pytorch.utils import MemoryEfficientSwish, Swish

    model = create_model("Efficientnet_b4", 3)
    assert isinstance(model._swish, MemoryEfficientSwish)
    set_fast_swish(model, True)
    assert isinstance(model._swish, Swish)
    set_fast_swish(create_model("resnet10t", 3), True)  # other models are left alone
