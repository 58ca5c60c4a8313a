"""The trial design: who sees which case, with which arm on which side, in which order.

Pure functions over ids (no database), so the properties the protocol promises can be checked
over thousands of seeds in milliseconds. See docs/protocol.md for the reasoning.

* **Complete**: every rater gets every case once per unordered pair of arms (with two arms:
  every case once). More than two arms → all C(k, 2) pairs per case.
* **Counterbalanced**: for each pair, a rater × case 0/1 matrix decides which arm goes left:
  ``side[r, c] = (rank(c) + r) mod 2`` with a seeded random ranking of the cases. Each row
  (rater) then has the pair's first arm on the left in ⌊n/2⌋ or ⌈n/2⌉ of its trials — exactly
  half when n is even — and each column (case) has it left for half of the raters (±1).
* **Ordered per rater**: a seeded shuffle specific to the rater, so neighbours in one rater's
  sequence tell nothing about another's.
* **Repeats** (intra-rater reliability): ``round(repeat_fraction × n)`` trials per rater and
  pair are shown again with the sides flipped, chosen so left/right stays balanced, taken from
  the first half of the sequence and inserted at least ⌊N/2⌋ positions after their original
  (N = the rater's trials without repeats; guaranteed while repeat_fraction ≤ 0.5 per pair —
  beyond that some originals must come from the second half and the gap shrinks).
* **Deterministic**: the same inputs and seed give the same design (numpy SeedSequence keyed
  by seed, rater index and pair index).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DesignTrial:
    rater: int  # the rater's id as given
    position: int  # 0-based place in the rater's sequence
    case: int
    left_arm: int
    right_arm: int
    is_repeat: bool = False
    repeat_of: int | None = None  # position of the original trial (same rater)


def arm_pairs(arms: Sequence[int]) -> list[tuple[int, int]]:
    """All unordered pairs of arms, in the order given (two arms → one pair)."""
    return list(itertools.combinations(arms, 2))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *keys]))


def side_matrix(n_raters: int, n_cases: int, seed: int, salt: int = 0) -> np.ndarray:
    """raters × cases of {0, 1}: 1 = the pair's first arm on the left. Row and column balanced."""
    rank = _rng(seed, 1, salt).permutation(n_cases)
    flip = int(_rng(seed, 2, salt).integers(0, 2))
    r = np.arange(n_raters)[:, None]
    return ((rank[None, :] + r + flip) % 2).astype(np.int8)


def _choose_repeats(
    base: list[tuple[int, int, int]], m: int, early: list[int], rng: np.random.Generator
) -> list[int]:
    """Indices into ``base`` (case, left, right) to repeat, balanced by which arm was left.

    A repeat flips the sides, so repeating x trials with arm A left and y with arm B left moves
    the balance by y − x; x is chosen so that the total stays balanced (±1).
    """
    if m <= 0 or not base:
        return []
    m = min(m, len(base))
    first_arm = base[0][1] if base[0][1] < base[0][2] else base[0][2]
    a_all = [i for i, t in enumerate(base) if t[1] == first_arm]
    b_all = [i for i, t in enumerate(base) if t[1] != first_arm]
    x = max(0, min(len(a_all), (m + len(a_all) - len(b_all)) // 2))
    y = min(len(b_all), m - x)
    x = min(len(a_all), m - y)
    early_set = set(early)
    chosen: list[int] = []
    for side, need in ((a_all, x), (b_all, y)):
        preferred = [i for i in side if i in early_set]
        if len(preferred) >= need:
            chosen += (
                [int(i) for i in rng.choice(preferred, size=need, replace=False)] if need else []
            )
        else:  # not enough early trials on this side: take the earliest of the rest
            rest = [i for i in side if i not in early_set]
            chosen += preferred + rest[: need - len(preferred)]
    return sorted(chosen)


def generate_design(
    *,
    raters: Sequence[int],
    cases: Sequence[int],
    arms: Sequence[int],
    seed: int,
    repeat_fraction: float = 0.0,
) -> list[DesignTrial]:
    """The full design: one list of trials, grouped by rater, positions 0..len-1 per rater."""
    if len(arms) < 2:
        raise ValueError("a design needs at least two arms")
    if len(set(arms)) != len(arms) or len(set(cases)) != len(cases):
        raise ValueError("arms and cases must be distinct")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise ValueError("repeat_fraction must lie in [0, 1]")
    pairs = arm_pairs(arms)
    n = len(cases)
    sides = [side_matrix(len(raters), n, seed, salt=p) for p in range(len(pairs))]
    design: list[DesignTrial] = []
    for r_index, rater in enumerate(raters):
        base: list[tuple[int, int, int]] = []
        for p_index, (a, b) in enumerate(pairs):
            row = sides[p_index][r_index]
            base += [(case, a, b) if row[c] else (case, b, a) for c, case in enumerate(cases)]
        order = _rng(seed, 3, r_index).permutation(len(base))
        base = [base[i] for i in order]
        design += _with_repeats(rater, r_index, base, pairs, n, seed, repeat_fraction)
    return design


def _with_repeats(
    rater: int,
    r_index: int,
    base: list[tuple[int, int, int]],
    pairs: list[tuple[int, int]],
    n_cases: int,
    seed: int,
    fraction: float,
) -> list[DesignTrial]:
    total = len(base)
    gap = max(1, total // 2)
    repeat_after: dict[int, list[int]] = {}
    rng = _rng(seed, 4, r_index)
    m = round(fraction * n_cases)
    for pair in pairs:
        members = [i for i, t in enumerate(base) if {t[1], t[2]} == set(pair)]
        sub = [base[i] for i in members]
        early = [k for k, i in enumerate(members) if i < total - gap]
        for k in _choose_repeats(sub, m, early, rng):
            original = members[k]
            repeat_after.setdefault(min(total - 1, original + gap), []).append(original)
    out: list[DesignTrial] = []
    position_of: dict[int, int] = {}
    for i, (case, left, right) in enumerate(base):
        position_of[i] = len(out)
        out.append(DesignTrial(rater, len(out), case, left, right))
        for original in sorted(repeat_after.get(i, [])):
            c, orig_left, orig_right = base[original]
            out.append(
                DesignTrial(rater, len(out), c, orig_right, orig_left, True, position_of[original])
            )
    return out
