"""Design generator properties, checked over many seeds and shapes (pure function, fast)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from app.services.study.design import DesignTrial, generate_design, side_matrix

ARMS = [11, 22]


def _by_rater(design: list[DesignTrial]) -> dict[int, list[DesignTrial]]:
    out: dict[int, list[DesignTrial]] = {}
    for t in design:
        out.setdefault(t.rater, []).append(t)
    return out


@pytest.mark.parametrize("n_cases", [1, 2, 5, 6, 7, 12, 25])
@pytest.mark.parametrize("n_raters", [1, 2, 3, 6])
def test_every_rater_sees_every_case_once_with_balanced_sides(n_cases: int, n_raters: int) -> None:
    raters = list(range(100, 100 + n_raters))
    cases = list(range(1000, 1000 + n_cases))
    for seed in range(40):
        design = generate_design(raters=raters, cases=cases, arms=ARMS, seed=seed)
        per_rater = _by_rater(design)
        assert sorted(per_rater) == raters
        for trials in per_rater.values():
            assert [t.position for t in trials] == list(range(n_cases))
            assert sorted(t.case for t in trials) == cases
            assert all({t.left_arm, t.right_arm} == set(ARMS) for t in trials)
            left = Counter(t.left_arm for t in trials)
            # exactly half when even, differing by at most one otherwise
            assert abs(left[11] - left[22]) == n_cases % 2
        for case in cases:
            left = Counter(t.left_arm for t in design if t.case == case)
            assert abs(left[11] - left[22]) <= 1, "per-case balance across raters"


def test_same_seed_same_design_and_different_seeds_differ() -> None:
    kwargs = {"raters": [1, 2, 3], "cases": list(range(30)), "arms": ARMS, "repeat_fraction": 0.2}
    a = generate_design(seed=7, **kwargs)  # type: ignore[arg-type]
    b = generate_design(seed=7, **kwargs)  # type: ignore[arg-type]
    c = generate_design(seed=8, **kwargs)  # type: ignore[arg-type]
    assert a == b
    assert a != c


def test_orders_are_rater_specific() -> None:
    design = generate_design(raters=[1, 2, 3, 4], cases=list(range(40)), arms=ARMS, seed=3)
    orders = [tuple(t.case for t in ts) for ts in _by_rater(design).values()]
    assert len(set(orders)) == 4
    # A seeded shuffle, not the input order.
    assert all(order != tuple(range(40)) for order in orders)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.5])
def test_repeats_flip_sides_keep_balance_and_are_far_from_the_original(fraction: float) -> None:
    for seed, n_cases in itertools.product(range(60), (6, 7, 10, 21)):
        design = generate_design(
            raters=[1, 2, 3],
            cases=list(range(n_cases)),
            arms=ARMS,
            seed=seed,
            repeat_fraction=fraction,
        )
        for trials in _by_rater(design).values():
            repeats = [t for t in trials if t.is_repeat]
            assert len(repeats) == round(fraction * n_cases)
            assert [t.position for t in trials] == list(range(len(trials)))
            left = Counter(t.left_arm for t in trials)
            assert abs(left[11] - left[22]) == len(trials) % 2
            originals = set()
            for r in repeats:
                assert r.repeat_of is not None
                original = trials[r.repeat_of]
                assert not original.is_repeat and original.case == r.case
                assert (original.left_arm, original.right_arm) == (r.right_arm, r.left_arm)
                assert r.position - original.position >= n_cases // 2
                originals.add(r.repeat_of)
            assert len(originals) == len(repeats), "each original is repeated at most once"


def test_three_arms_give_all_pairs_per_case_each_balanced() -> None:
    arms = [1, 2, 3]
    for seed in range(30):
        design = generate_design(raters=[7, 8], cases=list(range(8)), arms=arms, seed=seed)
        for trials in _by_rater(design).values():
            assert len(trials) == 8 * 3
            pairs = Counter((t.case, frozenset((t.left_arm, t.right_arm))) for t in trials)
            assert set(pairs.values()) == {1}
            for pair in itertools.combinations(arms, 2):
                sub = [t for t in trials if {t.left_arm, t.right_arm} == set(pair)]
                left = Counter(t.left_arm for t in sub)
                assert left[pair[0]] == left[pair[1]] == 4


def test_side_matrix_is_row_and_column_balanced() -> None:
    m = side_matrix(6, 9, seed=5)
    assert set(m.sum(axis=1).tolist()) <= {4, 5}
    assert set(m.sum(axis=0).tolist()) == {3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": [1]}, "two arms"),
        ({"arms": [1, 1]}, "distinct"),
        ({"repeat_fraction": 1.5}, "repeat_fraction"),
    ],
)
def test_invalid_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"raters": [1], "cases": [1, 2], "arms": ARMS, "seed": 0}
    with pytest.raises(ValueError, match=message):
        generate_design(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("n_arms", [3, 4])
@pytest.mark.parametrize("fraction", [0.0, 0.25])
def test_more_than_two_arms_never_show_the_same_case_back_to_back(
    n_arms: int, fraction: float
) -> None:
    arms = list(range(1, n_arms + 1))
    for seed, n_cases in itertools.product(range(40), (2, 3, 5, 8)):
        design = generate_design(
            raters=[1, 2],
            cases=list(range(n_cases)),
            arms=arms,
            seed=seed,
            repeat_fraction=fraction,
        )
        for trials in _by_rater(design).values():
            assert [t.position for t in trials] == list(range(len(trials)))
            cases = [t.case for t in trials]
            assert all(a != b for a, b in itertools.pairwise(cases)), (seed, n_cases, cases)
            # still complete: every case once per pair of arms (plus the repeats)
            pairs = Counter(
                (t.case, frozenset((t.left_arm, t.right_arm))) for t in trials if not t.is_repeat
            )
            assert len(pairs) == n_cases * len(list(itertools.combinations(arms, 2)))
            assert set(pairs.values()) == {1}
            for r in (t for t in trials if t.is_repeat):
                assert r.repeat_of is not None and trials[r.repeat_of].case == r.case


@pytest.mark.parametrize(
    ("n_raters", "n_cases", "n_anchors", "k"),
    [(6, 40, 5, 2), (6, 41, 0, 3), (5, 23, 3, 1), (4, 17, 4, 4), (3, 9, 2, 2), (7, 60, 6, 3)],
)
def test_anchor_and_rotate_reads_anchors_by_all_and_the_rest_by_k(
    n_raters: int, n_cases: int, n_anchors: int, k: int
) -> None:
    raters = list(range(100, 100 + n_raters))
    cases = list(range(1000, 1000 + n_cases))
    for seed in range(25):
        anchors = cases[seed % 3 : seed % 3 + n_anchors]
        design = generate_design(
            raters=raters,
            cases=cases,
            arms=ARMS,
            seed=seed,
            anchor_cases=anchors,
            readers_per_case=k,
        )
        readers: dict[int, set[int]] = {}
        for t in design:
            readers.setdefault(t.case, set()).add(t.rater)
        assert set(readers) == set(cases), "every case is read"
        for case, who in readers.items():
            assert len(who) == (n_raters if case in anchors else k)
        per_rater = _by_rater(design)
        loads = [len(ts) for ts in per_rater.values()]
        assert max(loads) - min(loads) <= 1, "workloads differ by at most one case"
        for trials in per_rater.values():
            assert [t.position for t in trials] == list(range(len(trials)))
            assert len({t.case for t in trials}) == len(trials), "no case twice for one rater"
            left = Counter(t.left_arm for t in trials)
            assert abs(left[11] - left[22]) == len(trials) % 2, "rater balance (±1, exact if even)"
        for case in cases:
            left = Counter(t.left_arm for t in design if t.case == case)
            assert abs(left[11] - left[22]) <= 1, "per-case balance across its readers"


def test_anchor_and_rotate_is_deterministic_and_takes_repeats_and_more_arms() -> None:
    kwargs = {
        "raters": [1, 2, 3, 4],
        "cases": list(range(30)),
        "arms": [5, 6, 7],
        "anchor_cases": [0, 1, 2],
        "readers_per_case": 2,
        "repeat_fraction": 0.2,
    }
    a = generate_design(seed=3, **kwargs)  # type: ignore[arg-type]
    assert a == generate_design(seed=3, **kwargs)  # type: ignore[arg-type]
    assert a != generate_design(seed=4, **kwargs)  # type: ignore[arg-type]
    for trials in _by_rater(a).values():
        own = {t.case for t in trials}
        assert {0, 1, 2} <= own
        n_repeats = sum(t.is_repeat for t in trials)
        assert n_repeats == 3 * round(0.2 * len(own))  # per pair of arms, of the rater's cases
        assert all(x.case != y.case for x, y in itertools.pairwise(trials))
        for pair in itertools.combinations([5, 6, 7], 2):
            sub = [t for t in trials if {t.left_arm, t.right_arm} == set(pair)]
            left = Counter(t.left_arm for t in sub)
            assert abs(left[pair[0]] - left[pair[1]]) <= 1 + len(sub) % 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"readers_per_case": 0}, "readers_per_case"),
        ({"readers_per_case": 3}, "readers_per_case"),
        ({"readers_per_case": 1, "anchor_cases": [99]}, "anchor_cases"),
        ({"anchor_cases": [1]}, "readers_per_case"),
    ],
)
def test_invalid_rotation_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"raters": [1, 2], "cases": [1, 2, 3], "arms": ARMS, "seed": 0}
    with pytest.raises(ValueError, match=message):
        generate_design(**{**base, **kwargs})  # type: ignore[arg-type]
