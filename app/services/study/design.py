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
* **No back-to-back case**: with more than two arms a case appears once per pair of arms, so
  the shuffled sequence is repaired with the fewest swaps until the same case never comes twice
  in a row (repeats too are placed so they never touch their own case). With two arms every
  case appears once and nothing moves.
* **Anchor-and-rotate** (``readers_per_case=k``): for case sets too large for every rater, a
  shared *anchor* set every rater reads (agreement and rater effects are estimated on it) plus
  the other cases dealt round the raters in rotating blocks, so each is read by exactly k
  raters and workloads differ by at most one case. Sides are then balanced per rater and per
  case (±1) by an Euler-circuit colouring of the rater × case incidence graph, the balanced
  edge colouring that exists for any bipartite graph; the crossed matrix above needs every
  rater to read every case.
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
    anchor_cases: Sequence[int] = (),
    readers_per_case: int | None = None,
) -> list[DesignTrial]:
    """The full design: one list of trials, grouped by rater, positions 0..len-1 per rater.

    ``readers_per_case=None`` is the fully crossed design. An integer k switches to
    anchor-and-rotate: every rater reads ``anchor_cases``; each other case is read by k raters.
    """
    if len(arms) < 2:
        raise ValueError("a design needs at least two arms")
    if len(set(arms)) != len(arms) or len(set(cases)) != len(cases):
        raise ValueError("arms and cases must be distinct")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise ValueError("repeat_fraction must lie in [0, 1]")
    pairs = arm_pairs(arms)
    if readers_per_case is not None:
        assigned = rotation(raters, cases, anchor_cases, readers_per_case, seed)
        return _incomplete_design(raters, assigned, pairs, seed, repeat_fraction)
    if anchor_cases:
        raise ValueError("anchor_cases need readers_per_case (the anchor-and-rotate design)")
    n = len(cases)
    sides = [side_matrix(len(raters), n, seed, salt=p) for p in range(len(pairs))]
    design: list[DesignTrial] = []
    for r_index, rater in enumerate(raters):
        base: list[tuple[int, int, int]] = []
        for p_index, (a, b) in enumerate(pairs):
            row = sides[p_index][r_index]
            base += [(case, a, b) if row[c] else (case, b, a) for c, case in enumerate(cases)]
        order = _rng(seed, 3, r_index).permutation(len(base))
        base = _separate_cases([base[i] for i in order])
        design += _with_repeats(rater, r_index, base, pairs, n, seed, repeat_fraction)
    return design


def rotation(
    raters: Sequence[int],
    cases: Sequence[int],
    anchor_cases: Sequence[int],
    readers_per_case: int,
    seed: int,
) -> dict[int, list[int]]:
    """rater → the cases they read under anchor-and-rotate (anchors first, then the rest).

    The non-anchor cases, in a seeded order, take k consecutive raters each round the circle
    of raters (case j: raters jk … jk+k−1 mod R), so every case has exactly k distinct readers
    and every rater's load is ⌊n·k/R⌋ or ⌈n·k/R⌉ non-anchor cases.
    """
    n_raters = len(raters)
    if len(set(raters)) != n_raters:
        raise ValueError("raters must be distinct")
    if not 1 <= readers_per_case <= n_raters:
        raise ValueError(
            f"readers_per_case must lie between 1 and the number of raters ({n_raters})"
        )
    anchors = list(anchor_cases)
    case_set = set(cases)
    if len(set(anchors)) != len(anchors) or not set(anchors) <= case_set:
        raise ValueError("anchor_cases must be distinct cases of the study")
    anchor_set = set(anchors)
    rotating = [c for c in cases if c not in anchor_set]
    rotating = [rotating[i] for i in _rng(seed, 5).permutation(len(rotating))]
    assigned: dict[int, list[int]] = {r: list(anchors) for r in raters}
    for j, case in enumerate(rotating):
        for i in range(readers_per_case):
            assigned[raters[(j * readers_per_case + i) % n_raters]].append(case)
    return assigned


def balanced_sides(
    assigned: dict[int, list[int]], seed: int, salt: int = 0
) -> dict[tuple[int, int], bool]:
    """(rater, case) → True when the pair's first arm goes left, for any incidence.

    Each rater's and each case's trials are split evenly (±1) between the two sides: odd-degree
    vertices are joined to a dummy vertex of the other side (two dummies, joined to each other
    if both end up odd), so every degree is even and the graph stays bipartite; each Euler
    circuit then has even length, and alternating sides along it gives every vertex as many
    trials of each side, less at most the one dummy edge.
    """
    rng = _rng(seed, 6, salt)
    edges: list[tuple[tuple[str, int], tuple[str, int]]] = [
        (("r", r), ("c", c)) for r, cs in assigned.items() for c in cs
    ]
    degree: dict[tuple[str, int], int] = {}
    for u, v in edges:
        degree[u] = degree.get(u, 0) + 1
        degree[v] = degree.get(v, 0) + 1
    dummy_r, dummy_c = ("r", -1), ("c", -1)  # dummy rater joins odd cases, and vice versa
    odd = [v for v, d in degree.items() if d % 2]
    extra = [(dummy_r, v) if v[0] == "c" else (v, dummy_c) for v in odd]
    if sum(1 for v in odd if v[0] == "c") % 2:
        extra.append((dummy_r, dummy_c))
    all_edges = edges + extra
    order = [int(i) for i in rng.permutation(len(all_edges))]
    adjacency: dict[tuple[str, int], list[int]] = {}
    for e in order:
        u, v = all_edges[e]
        adjacency.setdefault(u, []).append(e)
        adjacency.setdefault(v, []).append(e)
    used = [False] * len(all_edges)
    colour: dict[int, bool] = {}
    for start in sorted(adjacency):
        if all(used[e] for e in adjacency[start]):
            continue
        # Hierholzer: the circuit as a list of edges in traversal order
        stack: list[tuple[tuple[str, int], int | None]] = [(start, None)]
        circuit: list[int] = []
        while stack:
            vertex, via = stack[-1]
            edges_here = adjacency[vertex]
            while edges_here and used[edges_here[-1]]:
                edges_here.pop()
            if edges_here:
                e = edges_here.pop()
                used[e] = True
                u, v = all_edges[e]
                stack.append((v if u == vertex else u, e))
            else:
                stack.pop()
                if via is not None:
                    circuit.append(via)
        first = bool(rng.integers(0, 2))
        for k, e in enumerate(circuit):
            colour[e] = first if k % 2 == 0 else not first
    return {(u[1], v[1]): colour[e] for e, (u, v) in enumerate(edges)}


def _incomplete_design(
    raters: Sequence[int],
    assigned: dict[int, list[int]],
    pairs: list[tuple[int, int]],
    seed: int,
    repeat_fraction: float,
) -> list[DesignTrial]:
    sides = [balanced_sides(assigned, seed, salt=p) for p in range(len(pairs))]
    design: list[DesignTrial] = []
    for r_index, rater in enumerate(raters):
        base: list[tuple[int, int, int]] = []
        for p_index, (a, b) in enumerate(pairs):
            side = sides[p_index]
            base += [(c, a, b) if side[(rater, c)] else (c, b, a) for c in assigned[rater]]
        order = _rng(seed, 3, r_index).permutation(len(base))
        base = _separate_cases([base[i] for i in order])
        n = len(assigned[rater])
        design += _with_repeats(rater, r_index, base, pairs, n, seed, repeat_fraction)
    return design


def _separate_cases(base: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The shuffled sequence reordered as little as needed so no case comes back-to-back.

    Only matters with more than two arms (a case then appears once per pair). Walking the
    shuffled order, the next trial is the first remaining one whose case differs from the
    previous trial's and leaves an arrangeable rest (m trials after a trial of case p can be
    arranged iff no case has more than ⌈m/2⌉ of them and p no more than ⌊m/2⌋). With distinct
    cases that is always the next one, so two-arm designs keep the plain shuffle. A study
    with a single case cannot be separated and keeps its order.
    """
    counts: dict[int, int] = {}
    for case, _, _ in base:
        counts[case] = counts.get(case, 0) + 1
    remaining = list(base)
    out: list[tuple[int, int, int]] = []
    previous: int | None = None
    while remaining:
        m = len(remaining) - 1  # left after this pick
        chosen = 0
        for k, (case, _, _) in enumerate(remaining):
            if case == previous:
                continue
            counts[case] -= 1
            ok = all(n <= (m // 2 if c == case else (m + 1) // 2) for c, n in counts.items())
            counts[case] += 1
            if ok:
                chosen = k
                break
        item = remaining.pop(chosen)
        counts[item[0]] -= 1
        previous = item[0]
        out.append(item)
    return out


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
    # entries: (case, left, right, index in base of the original when a repeat, else None)
    seq: list[tuple[int, int, int, int | None]] = []
    pending: list[int] = []  # originals whose repeat is due but not yet placed
    for i, (case, left, right) in enumerate(base):
        seq.append((case, left, right, None))
        pending += sorted(repeat_after.get(i, []))
        following = base[i + 1][0] if i + 1 < len(base) else None
        still: list[int] = []
        for original in pending:
            c, orig_left, orig_right = base[original]
            if c in (seq[-1][0], following):  # never back-to-back with its own case
                still.append(original)
                continue
            seq.append((c, orig_right, orig_left, original))
        pending = still
    for original in pending:  # due at the very end: the latest place that touches no twin
        c, orig_left, orig_right = base[original]
        spot = len(seq)
        while spot > 0 and (seq[spot - 1][0] == c or (spot < len(seq) and seq[spot][0] == c)):
            spot -= 1
        seq.insert(spot, (c, orig_right, orig_left, original))
    base_position: dict[int, int] = {}
    n_seen = 0
    for k, entry in enumerate(seq):
        if entry[3] is None:
            base_position[n_seen] = k
            n_seen += 1
    return [
        DesignTrial(
            rater,
            k,
            case,
            left,
            right,
            original is not None,
            base_position[original] if original is not None else None,
        )
        for k, (case, left, right, original) in enumerate(seq)
    ]
