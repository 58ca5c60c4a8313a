"""Model-randomisation sanity check (Adebayo et al.): maps must depend on learned weights."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from ml.explain import compute_saliency, randomization_check, randomize_model, spearman_rows
from ml.explain.sanity import model_blocks
from ml.models import create_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _blob_model() -> nn.Module:
    """A 'trained' linear model whose class-1 evidence is a smooth blob in the image centre."""
    lin = nn.Linear(16 * 16, 2)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = torch.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / 18.0)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1] = blob.flatten()
        lin.bias.copy_(torch.tensor([0.0, 5.0]))
    return nn.Sequential(nn.Flatten(), lin)


def test_spearman_rows_known_values() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 45.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(spearman_rows(a, b), torch.tensor([1.0, -1.0, 0.0]))


def test_randomisation_drops_the_correlation() -> None:
    model = _blob_model()
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16)
    result = randomization_check(model, x, method="gradient", seed=1)
    assert result["mode"] == "full" and len(result["spearman"]) == 4
    assert abs(result["mean_spearman"]) < 0.3

    # An un-randomised copy explains identically: the drop comes from the weights.
    a = compute_saliency(model, x).maps
    b = compute_saliency(copy.deepcopy(model), x).maps
    torch.testing.assert_close(spearman_rows(a, b), torch.ones(4))
    again = randomization_check(model, x, method="gradient", seed=1)
    assert again["spearman"] == result["spearman"]  # seeded → reproducible
    assert float(model.state_dict()["1.weight"][0].abs().sum()) == 0.0  # original untouched


def test_randomize_model_copies_and_reinitialises() -> None:
    model = create_model("resnet_tiny", num_classes=2, in_channels=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rnd = randomize_model(model, seed=0, blocks=["backbone.fc"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(rnd.state_dict()["backbone.fc.weight"], before["backbone.fc.weight"])
    assert torch.equal(rnd.state_dict()["backbone.conv1.weight"], before["backbone.conv1.weight"])
    with pytest.raises(ValueError, match="unknown block"):
        randomize_model(model, blocks=["nope"])


def test_cascading_reports_each_block_from_the_output() -> None:
    torch.manual_seed(0)
    model = create_model("resnet_tiny", num_classes=2, in_channels=1)
    names = [n for n, _ in model_blocks(model)]
    assert names == [
        "backbone.conv1",
        "backbone.bn1",
        "backbone.layer1",
        "backbone.layer2",
        "backbone.layer3",
        "backbone.layer4",
        "backbone.fc",
    ]
    out = randomization_check(model, torch.rand(2, 1, 32, 32), mode="cascading", method="gradcam")
    assert [s["block"] for s in out["stages"]] == names[::-1]
    assert all(-1.0 <= s["mean_spearman"] <= 1.0 for s in out["stages"])
    with pytest.raises(ValueError, match="mode"):
        randomization_check(model, torch.rand(1, 1, 32, 32), mode="partial")
