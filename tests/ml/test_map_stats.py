"""Map comparison statistics and null baselines: known values, degenerate maps, warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon

from ml.evaluation.map_compare import wrong_class_notes
from ml.evaluation.map_nulls import derangement, is_degenerate, permuted_weights
from ml.evaluation.map_stats import bootstrap_mean_ci, compare_arms, paired_difference
from ml.explain.cases import Case, CaseSet
from ml.explain.contact_sheet import SheetRow, contact_sheet_figure
from ml.models import create_model


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal(0.3, 0.1, 20).tolist()
    large = rng.normal(0.3, 0.1, 500).tolist()
    m, lo, hi = bootstrap_mean_ci(small, 2000, seed=1)
    assert m is not None and lo is not None and hi is not None
    assert lo < m < hi and m == pytest.approx(np.mean(small))
    _, lo2, hi2 = bootstrap_mean_ci(large, 2000, seed=1)
    assert lo2 is not None and hi2 is not None and hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_mean_ci([], 100) == (None, None, None)
    assert bootstrap_mean_ci([0.5], 100) == (0.5, None, None)


def test_paired_difference_is_b_minus_a_with_wilcoxon_p() -> None:
    a = [0.1, 0.2, 0.15, 0.3, 0.25, 0.2, 0.1, 0.12]
    b = [x + d for x, d in zip(a, [0.05, 0.02, 0.08, 0.01, 0.04, 0.06, 0.03, 0.07], strict=True)]
    res = paired_difference(a, b, 1000, seed=0)
    assert res["n"] == 8 and res["mean_diff"] == pytest.approx(0.045)
    assert res["ci_low"] > 0
    d = np.subtract(b, a)
    assert res["wilcoxon_p"] == pytest.approx(wilcoxon(d).pvalue)
    assert paired_difference(a, a)["wilcoxon_p"] == 1.0


def test_degenerate_maps_are_counted_and_excluded_with_a_note() -> None:
    rows = [
        {"case_id": f"c{i}", "arm": arm, "mask_energy": v, "degenerate": arm == "B" and i < 2}
        for i in range(6)
        for arm, v in (("A", 0.1 + 0.01 * i), ("B", 0.0 if i < 2 else 0.3 + 0.01 * i))
    ]
    stats = compare_arms(rows, arms=["A", "B"], pairs=[("A", "B")], n_bootstrap=200)
    arms = {a["arm"]: a for a in stats["arms"]}
    assert arms["B"]["n_degenerate"] == 2 and arms["B"]["metrics"]["mask_energy"]["n"] == 4
    assert arms["B"]["metrics"]["mask_energy"]["mean"] == pytest.approx(0.335)
    assert stats["notes"] == [
        "B: 2 of 6 maps are degenerate (constant or all-zero) and are excluded from its statistics"
    ]
    (pair,) = stats["paired"]
    assert pair["n"] == 4 and pair["mean_diff"] == pytest.approx(0.2)
    assert stats["metrics"] == ["mask_energy"]
    assert is_degenerate(np.zeros((4, 4))) and is_degenerate(np.full((4, 4), 0.3))
    assert not is_degenerate(np.eye(4))


def test_null_helpers() -> None:
    for n in (2, 3, 10, 51):
        perm = derangement(n, seed=n)
        assert sorted(perm) == list(range(n)) and not (perm == np.arange(n)).any()
    model = create_model("resnet_tiny", 2, 1).eval()
    shuffled = permuted_weights(model, seed=0)
    for (name, p), q in zip(model.named_parameters(), shuffled.parameters(), strict=True):
        assert torch.equal(p.detach().flatten().sort().values, q.detach().flatten().sort().values)
        if p.numel() > 8 and p.detach().std() > 0:
            assert not torch.equal(p, q), name
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x), shuffled(x))


def test_predicted_target_on_boxed_images_of_another_class_is_called_out() -> None:
    blank = np.zeros((4, 4), np.float32)
    box = np.zeros((4, 4), bool)
    box[1:3, 1:3] = True
    cases = CaseSet(
        [
            Case("p1", Path("p1.png"), blank, blank, np.array([0.0, 1.0]), box),
            Case("p2", Path("p2.png"), blank, blank, np.array([0.0, 1.0]), box),
            Case("n1", Path("n1.png"), blank, blank, np.array([1.0, 0.0]), None),
        ],
        ["normal", "pneumonia"],
        False,
        Path("."),
    )
    rows = [
        {"case_id": "p1", "arm": "std", "target": "normal", "label": "pneumonia"},
        {"case_id": "p2", "arm": "std", "target": "pneumonia", "label": "pneumonia"},
        {"case_id": "n1", "arm": "std", "target": "pneumonia", "label": "normal"},
    ]
    (note,) = wrong_class_notes(rows, cases, ["std"])
    assert note.startswith("std: 1 of 2 images with a mask were explained for the predicted")
    assert "'normal' explained, truth 'pneumonia'" in note and "--target ground_truth" in note


def test_contact_sheet_title_clears_the_column_headers() -> None:
    display = np.zeros((32, 32), np.uint8)
    maps = [np.zeros((32, 32), np.float32)] * 3
    rows = [SheetRow(display, maps, "case", ["normal 0.9"] * 3) for _ in range(6)]
    columns = ["standard", "dual-bn-clean", "dual-bn-adv"]
    fig = contact_sheet_figure(rows, columns, suptitle="gradient · target predicted")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    title = fig._suptitle.get_window_extent(renderer)  # type: ignore[union-attr]
    headers = [ax.title.get_window_extent(renderer) for ax in fig.axes[:4]]
    # A clear gap (8 px at 150 dpi) above every header; tight_layout left 3 px at six rows.
    assert all(title.y0 - h.y1 >= 8 for h in headers)
