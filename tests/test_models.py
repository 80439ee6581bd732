import json
from pathlib import Path

import pytest
import torch

from models import MODELS, ModelError, create_model, set_fast_swish
from models.registry import MultiHead

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODELS = json.loads((ROOT / "search_space.demo.json").read_text())["model"]["_value"]


HEADS = [{"multi": 3}, {"multi": 18}, {"mask": 3, "gender": 2, "age": 3}]


@pytest.mark.parametrize("name", list(MODELS) + DEMO_MODELS)
@pytest.mark.parametrize("heads", HEADS, ids=lambda heads: "+".join(f"{k}{v}" for k, v in heads.items()))
def test_every_model_builds_and_runs_at_a_tiny_size(name, heads):
    """The registry's contract: one head returns a tensor, several a dict of every head's logits."""
    model = create_model(name, heads, pretrained=False).eval()
    with torch.inference_mode():
        output = model(torch.randn(2, 3, 64, 64))
    outputs = {"multi": output} if len(heads) == 1 else output
    assert isinstance(output, torch.Tensor) == (len(heads) == 1)
    assert {task: tuple(logits.shape) for task, logits in outputs.items()} == {t: (2, k) for t, k in heads.items()}
    assert all(torch.isfinite(logits).all() for logits in outputs.values())


def test_any_timm_name_works_beyond_the_registry():
    assert create_model("resnet10t", {"multi": 4}).fc.out_features == 4


def test_several_heads_share_one_backbone():
    model = create_model("resnet10t", {"mask": 3, "gender": 2})
    assert isinstance(model, MultiHead)
    features = model.backbone(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, model.backbone.num_features)  # pooled features, no classifier of its own
    assert [head.out_features for head in model.heads.values()] == [3, 2]


def test_unknown_names_fail_clearly():
    with pytest.raises(ModelError, match="unknown model 'notanet': expected one of Efficientnet_b4"):
        create_model("notanet", 3)


@pytest.mark.parametrize("name", ["ecaresnet50t", "Efficientnet_b4"])
def test_pretrained_weights_load_from_a_local_file_with_the_classifier_resized(name, tmp_path):
    """The path a machine without internet takes: ImageNet-shaped weights in, a task-sized classifier out."""
    torch.manual_seed(0)
    imagenet = create_model(name, {"multi": 1000}, pretrained=False)
    weights = tmp_path / "weights.pth"
    torch.save(imagenet.state_dict(), weights)
    model = create_model(name, {"multi": 3}, pretrained=True, weights=str(weights))
    ours, theirs = model.state_dict(), imagenet.state_dict()
    shared = [k for k in ours if ours[k].shape == theirs[k].shape]
    assert len(shared) > 100
    assert all(torch.equal(ours[k], theirs[k]) for k in shared if not k.startswith(("fc.", "_fc.")))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


@pytest.mark.parametrize("name", ["ecaresnet50t", "Efficientnet_b4"])
def test_weights_that_cannot_be_had_give_a_clear_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=f"weights file {tmp_path / 'missing.pth'} for {name} not found"):
        create_model(name, {"multi": 3}, pretrained=True, weights=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"not": torch.zeros(1)}, wrong)
    expected = f"(does not fit {name}|weights for {name} could not be loaded).*--pretrained false"
    with pytest.raises(ModelError, match=expected):
        create_model(name, {"multi": 3}, pretrained=True, weights=str(wrong))


def test_offline_download_failure_says_how_to_supply_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as caught:
        create_model("dm_nfnet_f0", {"multi": 3}, pretrained=True)
    message = str(caught.value)
    assert "timm/dm_nfnet_f0" in message and "--weights PATH" in message and "\n" not in message


def test_efficientnet_trains_with_the_plain_swish_when_asked():
    from efficientnet_pytorch.utils import MemoryEfficientSwish, Swish

    model = create_model("Efficientnet_b4", {"multi": 3}, fast_swish=False)
    assert isinstance(model._swish, MemoryEfficientSwish)
    set_fast_swish(model, True)
    assert isinstance(model._swish, Swish)
    set_fast_swish(create_model("resnet10t", {"multi": 3}), True)  # other models are left alone
