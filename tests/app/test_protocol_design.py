"""Practice block and catch trials around the design (app.services.study.protocol)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from app.services.study.design import generate_design
from app.services.study.protocol import ProtocolTrial, add_protocol

ARMS = [11, 22]


def _by_rater(trials: list[ProtocolTrial]) -> dict[int, list[ProtocolTrial]]:
    out: dict[int, list[ProtocolTrial]] = {}
    for t in trials:
        out.setdefault(t.rater, []).append(t)
    return out


@pytest.mark.parametrize("n_cases", [4, 9, 20])
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25])
def test_practice_first_catch_within_and_the_main_design_untouched(
    n_cases: int, fraction: float
) -> None:
    cases = list(range(100, 100 + n_cases))
    for seed in range(20):
        design = generate_design(
            raters=[1, 2, 3], cases=cases, arms=ARMS, seed=seed, repeat_fraction=0.2
        )
        plan = add_protocol(
            design, arms=ARMS, seed=seed, practice_cases=[900, 901, 902], catch_fraction=fraction
        )
        for rater, trials in _by_rater(plan).items():
            assert [t.position for t in trials] == list(range(len(trials)))
            practice = [t for t in trials if t.phase == "practice"]
            assert [t.position for t in practice] == [0, 1, 2], "practice comes first"
            assert sorted(t.case for t in practice) == [900, 901, 902]
            assert all(t.catch is None and not t.analysed for t in practice)
            left = Counter(t.left_arm for t in practice)
            assert abs(left[11] - left[22]) == 1
            # the main trials are exactly the design's, in the same order, repeats still point
            # at their originals
            main = [t for t in trials if t.analysed]
            original = [t for t in design if t.rater == rater]
            assert [(t.case, t.left_arm, t.right_arm, t.is_repeat) for t in main] == [
                (t.case, t.left_arm, t.right_arm, t.is_repeat) for t in original
            ]
            for t in main:
                if t.is_repeat:
                    assert t.repeat_of is not None
                    orig = trials[t.repeat_of]
                    assert orig.case == t.case and orig.analysed and not orig.is_repeat
            catches = [t for t in trials if t.catch is not None]
            assert len(catches) == round(fraction * len(original))
            for c in catches:
                assert c.phase == "main" and not c.analysed
                assert c.position > 2, "never before the first main trial"
                assert c.case in cases and c.catch_arm in ARMS
                assert c.catch_arm in (c.left_arm, c.right_arm) and c.left_arm != c.right_arm
                if c.catch == "randomised":
                    assert c.real_side in ("left", "right")
                    assert (c.left_arm if c.real_side == "left" else c.right_arm) == c.catch_arm
                else:
                    assert c.real_side is None
                neighbours = [
                    trials[i].case for i in (c.position - 1, c.position + 1) if 0 <= i < len(trials)
                ]
                assert c.case not in neighbours or n_cases < 4


def test_catch_kinds_arms_and_real_sides_alternate() -> None:
    design = generate_design(raters=[1], cases=list(range(40)), arms=ARMS, seed=5)
    plan = add_protocol(design, arms=ARMS, seed=5, catch_fraction=0.2)
    catches = [t for t in plan if t.catch]
    assert len(catches) == 8
    assert Counter(t.catch for t in catches) == {"same": 4, "randomised": 4}
    rand = [t for t in catches if t.catch == "randomised"]
    assert Counter(t.real_side for t in rand) == {"left": 2, "right": 2}
    assert Counter(t.catch_arm for t in catches) == {11: 4, 22: 4}
    only_same = add_protocol(design, arms=ARMS, seed=5, catch_fraction=0.1, catch_kinds=["same"])
    assert {t.catch for t in only_same if t.catch} == {"same"}


def test_protocol_is_deterministic_and_serialises_only_what_differs() -> None:
    design = generate_design(raters=[1, 2], cases=list(range(12)), arms=[1, 2, 3], seed=1)
    kwargs = {"arms": [1, 2, 3], "practice_cases": [50], "catch_fraction": 0.25}
    a = add_protocol(design, seed=9, **kwargs)  # type: ignore[arg-type]
    assert a == add_protocol(design, seed=9, **kwargs)  # type: ignore[arg-type]
    assert a != add_protocol(design, seed=10, **kwargs)  # type: ignore[arg-type]
    stored = [t.protocol_json() for t in a]
    assert {"phase": "practice"} in stored and None in stored
    assert any(s and s.get("catch") == "randomised" and s["real_side"] for s in stored)
    for trials in _by_rater(a).values():
        assert all(x.case != y.case for x, y in itertools.pairwise(trials) if x.catch or y.catch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"catch_fraction": 0.8}, "catch_fraction"),
        ({"catch_fraction": 0.1, "catch_kinds": []}, "catch kind"),
        ({"catch_fraction": 0.1, "catch_kinds": ["odd"]}, "catch kinds"),
        ({"practice_cases": [1, 1]}, "distinct"),
        ({"arms": [1]}, "two arms"),
    ],
)
def test_invalid_protocol_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    design = generate_design(raters=[1], cases=[1, 2, 3], arms=ARMS, seed=0)
    base: dict[str, object] = {"arms": ARMS, "seed": 0}
    with pytest.raises(ValueError, match=message):
        add_protocol(design, **{**base, **kwargs})  # type: ignore[arg-type]
