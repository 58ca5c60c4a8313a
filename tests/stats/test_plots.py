"""Figures: valid PNG/SVG, built from the statistics' own dicts, text kept as text in SVG."""

from __future__ import annotations

import pandas as pd
import pytest

from app.stats import plots
from app.stats.summary import analyze


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    rows, prefs = [], []
    for r in range(3):
        for c in range(6):
            std, adv = 1 + (c + r) % 4, min(5, 2 + (c + r) % 4)
            for arm, score in (("standard", std), ("dual-BN", adv)):
                rows.append(
                    {
                        "rater": f"reader{r}",
                        "case": str(c),
                        "arm": arm,
                        "item": "q",
                        "score": score,
                        "is_repeat": False,
                    }
                )
            prefs.append(
                {
                    "rater": f"reader{r}",
                    "case": str(c),
                    "left_arm": "standard",
                    "right_arm": "dual-BN",
                    "preference": "right" if adv > std else "none",
                    "is_repeat": False,
                }
            )
    return analyze(
        pd.DataFrame(rows),
        pd.DataFrame(prefs),
        arms=["standard", "dual-BN"],
        levels={"q": [1, 2, 3, 4, 5]},
        n_boot=50,
    )


def test_every_figure_renders_as_png_and_svg(result: dict) -> None:  # type: ignore[type-arg]
    item = result["items"][0]
    comp = item["comparisons"][0]
    pref = result["preferences"][0]
    makers = {
        "likert": lambda fmt: plots.likert_diverging(
            item["distribution"], item["levels"], anchors=["poor", "excellent"], fmt=fmt
        ),
        "forest": lambda fmt: plots.forest_plot(
            comp["per_rater"], comp["rater_case"], difference=comp["difference"], fmt=fmt
        ),
        "preference": lambda fmt: plots.preference_bars(pref, fmt=fmt),
        "agreement": lambda fmt: plots.agreement_table(item["agreement"], fmt=fmt),
    }
    for name, make in makers.items():
        png = make("png")
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        svg = make("svg").decode()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg, name
    # Labels are real text in SVG (searchable, editable by a journal's typesetter).
    assert "reader2" in makers["forest"]("svg").decode()
    assert "dual-BN" in makers["likert"]("svg").decode()
    assert "α ordinal" in makers["agreement"]("svg").decode()


def test_svg_is_reproducible(result: dict) -> None:  # type: ignore[type-arg]
    pref = result["preferences"][0]
    assert plots.preference_bars(pref, fmt="svg") == plots.preference_bars(pref, fmt="svg")
