"""Statistics of the quality-controlled protocol: localisation metrics, arm comparison on them,
and catch-trial performance per rater (pure functions on arrays and frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.stats.catch import catch_performance
from app.stats.localisation import compare_arms, localisation_metrics, region_mask


def test_region_masks_cover_the_shape_at_any_resolution() -> None:
    box = {"shape": "box", "x0": 0.25, "y0": 0.5, "x1": 0.75, "y1": 1.0}
    m = region_mask(box, 8, 8)
    assert m.sum() == 4 * 4 and m[4:, 2:6].all()
    assert region_mask(box, 100, 40).mean() == pytest.approx(0.25, abs=0.02)
    ellipse = {"shape": "ellipse", "cx": 0.5, "cy": 0.5, "rx": 0.4, "ry": 0.2}
    assert region_mask(ellipse, 400, 400).mean() == pytest.approx(np.pi * 0.4 * 0.2, abs=0.005)
    triangle = {"shape": "polygon", "points": [[0, 0], [1, 0], [0, 1]]}
    assert region_mask(triangle, 200, 200).mean() == pytest.approx(0.5, abs=0.01)
    # concave (L-shaped) polygon: area 3/4 of the image
    ell = {"shape": "polygon", "points": [[0, 0], [1, 0], [1, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]}
    assert region_mask(ell, 100, 100).mean() == pytest.approx(0.75, abs=0.01)
    tiny = {"shape": "box", "x0": 0.5, "y0": 0.5, "x1": 0.501, "y1": 0.501}
    assert region_mask(tiny, 4, 4).sum() == 1, "a sub-pixel region still marks one pixel"


def test_localisation_metrics_on_known_maps() -> None:
    mask = region_mask({"shape": "box", "x0": 0.0, "y0": 0.0, "x1": 0.5, "y1": 0.5}, 10, 10)
    inside = np.zeros((10, 10))
    inside[1:4, 1:4] = 1.0
    inside[2, 2] = 5.0
    m = localisation_metrics(inside, mask, top_percent=9)
    assert m["energy_inside"] == pytest.approx(1.0)
    assert m["pointing_hit"] == 1
    assert m["iou_top_k"] == pytest.approx(9 / 25)
    assert m["area_fraction"] == pytest.approx(0.25)
    outside = np.zeros((10, 10))
    outside[8, 8] = 1.0
    m = localisation_metrics(-outside, mask)  # sign does not matter
    assert m["energy_inside"] == 0.0 and m["pointing_hit"] == 0
    flat = localisation_metrics(np.ones((10, 10)), mask)
    assert flat["energy_inside"] == pytest.approx(0.25), "uniform map scores the area (chance)"
    assert flat["pointing_hit"] is None
    assert localisation_metrics(np.zeros((10, 10)), mask)["energy_inside"] is None
    with pytest.raises(ValueError):
        localisation_metrics(np.ones((5, 5)), mask)


def test_compare_arms_finds_the_better_localising_arm() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for rater in ("r1", "r2", "r3"):
        for case in range(12):
            good = 0.6 + 0.2 * rng.random()
            rows.append(
                {
                    "rater": rater,
                    "case": case,
                    "arm": "robust",
                    "energy_inside": good,
                    "pointing_hit": 1,
                    "iou_top_k": good / 2,
                    "area_fraction": 0.2,
                }
            )
            rows.append(
                {
                    "rater": rater,
                    "case": case,
                    "arm": "standard",
                    "energy_inside": good - 0.3,
                    "pointing_hit": int(case % 3 == 0),
                    "iou_top_k": None,
                    "area_fraction": 0.2,
                }
            )
    out = compare_arms(pd.DataFrame(rows), ["standard", "robust"])
    assert out["n_answers"] == 36
    per_arm = {a["arm"]: a for a in out["per_arm"]}
    assert per_arm["robust"]["energy_inside"] > per_arm["standard"]["energy_inside"]
    energy = next(c for c in out["comparisons"] if c["metric"] == "energy_inside")
    assert energy["difference"] == "robust - standard"
    assert energy["rater_case"]["mean_diff"] == pytest.approx(0.3)
    assert energy["rater_case"]["wilcoxon"]["p_value"] < 0.001
    iou = next(c for c in out["comparisons"] if c["metric"] == "iou_top_k")
    assert iou["rater_case"]["n"] == 0, "a metric missing for one arm yields no pairs"
    assert compare_arms(pd.DataFrame())["n_answers"] == 0


def test_catch_performance_flags_the_inattentive_rater() -> None:
    rows = []
    for k in range(6):
        # careful: equal scores on identical maps, prefers the real map
        rows.append(
            {
                "rater": "careful",
                "kind": "same",
                "real_side": None,
                "score_left": 3,
                "score_right": 3,
                "preference": "none",
            }
        )
        side = "left" if k % 2 else "right"
        hi, lo = 5, 2
        rows.append(
            {
                "rater": "careful",
                "kind": "randomised",
                "real_side": side,
                "score_left": hi if side == "left" else lo,
                "score_right": lo if side == "left" else hi,
                "preference": side,
            }
        )
        # habit: always scores A higher and prefers A, whatever the maps
        rows.append(
            {
                "rater": "habit",
                "kind": "same",
                "real_side": None,
                "score_left": 4,
                "score_right": 2,
                "preference": "left",
            }
        )
        rows.append(
            {
                "rater": "habit",
                "kind": "randomised",
                "real_side": side,
                "score_left": 4,
                "score_right": 2,
                "preference": "left",
            }
        )
    rows.append(
        {
            "rater": "habit",
            "kind": "not-a-catch",
            "real_side": None,
            "score_left": 1,
            "score_right": 1,
            "preference": "none",
        }
    )
    out = catch_performance(pd.DataFrame(rows))
    assert out["n_trials"] == 24
    assert out["flagged_raters"] == ["habit"]
    careful, habit = out["per_rater"]
    assert careful["rater"] == "careful" and careful["flagged"] is False
    assert careful["same_equal_scores"]["rate"] == 1.0
    assert careful["real_preferred"]["k"] == 6
    assert careful["real_scored_higher"]["ci_low"] > 0.5
    assert habit["same_equal_scores"]["rate"] == 0.0
    assert habit["real_scored_higher"]["rate"] == 0.5
    assert habit["same_mean_abs_diff"] == 2.0
    with pytest.raises(ValueError, match="lacks columns"):
        catch_performance(pd.DataFrame({"rater": []}))
