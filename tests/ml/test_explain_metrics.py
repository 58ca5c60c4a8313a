"""Map-quality metrics give the textbook answers on hand-made maps and models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ml.explain import (
    deletion_auc,
    entropy,
    gini,
    insertion_auc,
    map_metrics,
    mask_energy,
    pointing_game,
    total_variation,
)

N = 16 * 16


def _single_and_uniform() -> torch.Tensor:
    single = torch.zeros(16, 16)
    single[5, 7] = 3.0
    return torch.stack([single, torch.full((16, 16), 0.2), torch.zeros(16, 16)])


def test_gini_single_pixel_vs_uniform() -> None:
    g = gini(_single_and_uniform())
    torch.testing.assert_close(g, torch.tensor([1 - 1 / N, 0.0, 0.0]), atol=1e-6, rtol=0)
    # Scale-invariant, and half the pixels at equal mass gives exactly 0.5.
    half = torch.zeros(1, 16, 16)
    half[0, :8] = 4.0
    torch.testing.assert_close(gini(half), torch.tensor([0.5]))
    torch.testing.assert_close(gini(half * 1e-6), torch.tensor([0.5]))


def test_entropy_single_pixel_vs_uniform() -> None:
    h = entropy(_single_and_uniform())
    torch.testing.assert_close(h, torch.tensor([0.0, 1.0, 1.0]), atol=1e-6, rtol=0)
    two = torch.zeros(1, 16, 16)
    two[0, 0, :2] = 1.0
    torch.testing.assert_close(entropy(two), torch.tensor([math.log(2) / math.log(N)]))


def test_total_variation_known_values() -> None:
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    step = torch.zeros(8, 8)
    step[:, 4:] = 1.0
    tv = total_variation(torch.stack([checker.float(), torch.ones(8, 8), step]))
    pairs = 8 * 7 + 7 * 8
    torch.testing.assert_close(tv, torch.tensor([1.0, 0.0, 8 / pairs]))


def test_mask_energy_and_pointing_game() -> None:
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:8, 4:8] = True
    inside = torch.zeros(16, 16)
    inside[5, 5], inside[6, 6] = 1.0, 2.0
    outside = torch.zeros(16, 16)
    outside[12, 12] = 1.0
    half = torch.zeros(16, 16)
    half[5, 5], half[12, 12] = 1.0, 1.0
    maps = torch.stack([inside, outside, half, torch.ones(16, 16)])
    masks = mask.expand(4, -1, -1)
    torch.testing.assert_close(mask_energy(maps, masks), torch.tensor([1.0, 0.0, 0.5, 16 / N]))
    # The flat map's maximum is everywhere, mostly outside: no lucky hit.
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0, 0.0, 0.0]

    empty = torch.zeros(1, 16, 16)
    assert math.isnan(float(mask_energy(maps[:1], empty)[0]))
    with pytest.raises(ValueError, match="must match maps"):
        mask_energy(maps, torch.ones(4, 8, 8))


def test_map_metrics_rows_are_json_ready() -> None:
    maps = _single_and_uniform()
    masks = torch.zeros(3, 16, 16)
    masks[0, 5, 7] = 1
    masks[1, :8] = 1
    rows = map_metrics(maps, masks)
    expected = {"gini": 1 - 1 / N, "entropy": 0.0, "mask_energy": 1.0, "pointing": 1.0}
    assert {k: rows[0][k] for k in expected} == pytest.approx(expected)
    assert rows[0]["mask_area"] == pytest.approx(1 / N) and rows[1]["mask_area"] == 0.5
    assert rows[1]["mask_energy"] == pytest.approx(0.5)
    assert rows[2]["mask_energy"] is None and rows[2]["pointing"] is None  # empty mask
    assert map_metrics(maps)[0]["mask_energy"] is None
    # Clipped maps tie at their maximum; the pointing game then looks at the raw map.
    clipped = torch.ones(1, 16, 16)
    raw = torch.zeros(1, 16, 16)
    raw[0, 2, 2] = 1.0
    box = torch.zeros(1, 16, 16)
    box[0, :4, :4] = 1
    assert map_metrics(clipped, box)[0]["pointing"] == 0.0
    assert map_metrics(clipped, box, raw_maps=raw)[0]["pointing"] == 1.0


def _region_model() -> nn.Module:
    """Logit 1 = 0.5 × sum of the top-left 4×4 pixels of an 8×8 image; logit 0 = 0."""
    lin = nn.Linear(64, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1].view(8, 8)[:4, :4] = 0.5
    return nn.Sequential(nn.Flatten(), lin)


def test_deletion_and_insertion_auc_known_values() -> None:
    model = _region_model()
    x = torch.ones(2, 1, 8, 8)
    good = torch.zeros(8, 8)
    good[:4, :4] = 1.0
    maps = torch.stack([good, 1.0 - good])  # the second map points everywhere but the region
    s8 = 1 / (1 + math.exp(-8))

    # 4 steps of 16 pixels: the faithful map removes the whole region in the first step.
    dele = deletion_auc(model, x, maps, [1, 1], steps=4)
    expected_good = ((s8 + 0.5) / 2 + 0.5 * 3) / 4
    expected_bad = (s8 * 3 + (s8 + 0.5) / 2) / 4
    torch.testing.assert_close(dele, torch.tensor([expected_good, expected_bad]))

    ins = insertion_auc(model, x, maps, [1, 1], steps=4, baseline="zero")
    torch.testing.assert_close(ins, torch.tensor([expected_bad, expected_good]))


def test_constant_model_gives_chance_auc_and_restores_mode() -> None:
    lin = nn.Linear(64, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
    model = nn.Sequential(nn.Flatten(), lin)
    model.train()
    torch.manual_seed(0)
    x, maps = torch.rand(3, 1, 8, 8), torch.rand(3, 8, 8)
    for auc in (
        deletion_auc(model, x, maps, [0, 1, 0]),
        insertion_auc(model, x, maps, [[0], [1], [0, 1]]),
    ):
        torch.testing.assert_close(auc, torch.full((3,), 0.5))
    assert model.training
    with pytest.raises(ValueError, match="not a class index"):
        deletion_auc(model, x, maps, [0, 5, 0])
