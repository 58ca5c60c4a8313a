"""Quality-control trials around the design: a practice block first, catch trials within.

Pure functions over ids (like app.services.study.design), so the promises below are property
tests, not hopes. The main design is taken as given; this module only adds trials and shifts
positions, so everything the design guarantees for the main trials (balance, order, repeats)
still holds for them.

* **Practice block**: every rater starts with the practice cases, in a seeded order, each shown
  with the study's first pair of arms, sides alternating. Practice trials carry
  ``phase="practice"``: the rater is told they are practice and gets feedback, and no analysis
  row or statistic ever includes them (the tidy export keeps them, with their phase).
* **Catch trials**: ``round(catch_fraction × main trials)`` per rater, on the rater's own cases,
  dealt at seeded positions among the main trials (never first, never next to a trial of the
  same case). Kinds alternate over the chosen ones:

  - ``same``: one arm's map on both sides (expected: equal scores, no preference); which arm
    alternates, so both architectures are checked;
  - ``randomised``: an arm's real map against the map of the same arm's architecture with
    randomised weights (expected: the real map wins); the real map's side alternates, so a
    side habit cannot pass the check.

  The stored left/right arms stay a valid pair (the catch arm and another arm); ``catch_arm``
  and ``real_side`` say what the slots actually show. A catch trial looks exactly like any
  other trial to the rater: same token, URLs and payload shape (the blinding tests check it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, model_validator

from app.ids import BodyInt
from app.services.study.design import DesignTrial

Phase = Literal["practice", "main"]
CatchKind = Literal["same", "randomised"]
CATCH_KINDS: tuple[CatchKind, ...] = ("same", "randomised")


MAX_PRACTICE = 20
CASE_TEXT_MAX = 2000


class ProtocolSpec(BaseModel):
    """A study's quality-control options (`protocol` in `POST /studies`), defaults: none.

    Stored as `Study.protocol` (JSON) in the shape this model dumps; `protocol_settings`
    reads it back leniently.
    """

    model_config = ConfigDict(extra="forbid")

    practice_image_ids: list[BodyInt] = Field(default_factory=list, max_length=MAX_PRACTICE)
    catch_fraction: StrictFloat = Field(default=0.0, ge=0.0, le=0.5)
    catch_kinds: list[CatchKind] = Field(default_factory=lambda: list(CATCH_KINDS), min_length=1)
    readers_per_case: BodyInt | None = Field(default=None, ge=1)
    anchor_image_ids: list[BodyInt] = Field(default_factory=list)
    # Per-case text (clinical history) shown above the images, by image id.
    case_text: dict[str, str] = Field(default_factory=dict)
    # The reference shown after a practice answer, by image id (default: the case's findings).
    practice_feedback: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> ProtocolSpec:
        if len(set(self.practice_image_ids)) != len(self.practice_image_ids):
            raise ValueError("practice_image_ids contains duplicates")
        if len(set(self.anchor_image_ids)) != len(self.anchor_image_ids):
            raise ValueError("anchor_image_ids contains duplicates")
        if len(set(self.catch_kinds)) != len(self.catch_kinds):
            raise ValueError("catch_kinds contains duplicates")
        if self.anchor_image_ids and self.readers_per_case is None:
            raise ValueError("anchor_image_ids need readers_per_case (anchor-and-rotate)")
        for key, text in self.case_text.items():
            if not key.isdigit():
                raise ValueError("case_text is keyed by image id")
            if len(text) > CASE_TEXT_MAX:
                raise ValueError(f"a case text is longer than {CASE_TEXT_MAX} characters")
        return self

    def check_cases(self, image_ids: Sequence[int], n_raters: int) -> None:
        """What needs the rest of the spec: anchors among the study's images, k ≤ raters."""
        cases = set(image_ids)
        if not set(self.anchor_image_ids) <= cases:
            raise ValueError("anchor_image_ids must be images of the study")
        if self.readers_per_case is not None and self.readers_per_case > n_raters:
            raise ValueError("readers_per_case cannot exceed the number of raters")
        known = cases | set(self.practice_image_ids)
        if any(int(k) not in known for k in self.case_text):
            raise ValueError("case_text names an image that is not in the study")


def protocol_settings(stored: Mapping[str, Any] | None) -> ProtocolSpec:
    """The typed view of `Study.protocol` (None or {} for a study without quality control)."""
    raw = dict(stored or {})
    fields = ProtocolSpec.model_fields
    return ProtocolSpec.model_validate({k: v for k, v in raw.items() if k in fields})


@dataclass(frozen=True)
class ProtocolTrial:
    rater: int
    position: int
    case: int
    left_arm: int
    right_arm: int
    is_repeat: bool = False
    repeat_of: int | None = None
    phase: Phase = "main"
    catch: CatchKind | None = None
    catch_arm: int | None = None  # the arm whose map(s) the catch trial shows
    real_side: Literal["left", "right"] | None = None  # randomised: the real map's slot

    @property
    def analysed(self) -> bool:
        """Whether the trial enters the main statistics (not practice, not catch)."""
        return self.phase == "main" and self.catch is None

    def protocol_json(self) -> dict[str, object] | None:
        """What the trial row stores beside the plain design (None for an ordinary trial)."""
        if self.phase == "practice":
            return {"phase": "practice"}
        if self.catch is not None:
            return {"catch": self.catch, "catch_arm": self.catch_arm, "real_side": self.real_side}
        return None


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7, *keys]))


def add_protocol(
    design: Sequence[DesignTrial],
    *,
    arms: Sequence[int],
    seed: int,
    practice_cases: Sequence[int] = (),
    catch_fraction: float = 0.0,
    catch_kinds: Sequence[CatchKind] = CATCH_KINDS,
) -> list[ProtocolTrial]:
    """The design with each rater's practice block in front and catch trials dealt in."""
    if not 0.0 <= catch_fraction <= 0.5:
        raise ValueError("catch_fraction must lie in [0, 0.5]")
    if catch_fraction and not catch_kinds:
        raise ValueError("catch trials need at least one catch kind")
    if any(k not in CATCH_KINDS for k in catch_kinds):
        raise ValueError(f"catch kinds must be among {', '.join(CATCH_KINDS)}")
    if len(set(practice_cases)) != len(practice_cases):
        raise ValueError("practice cases must be distinct")
    if len(arms) < 2:
        raise ValueError("a protocol needs at least two arms")
    by_rater: dict[int, list[DesignTrial]] = {}
    for t in design:
        by_rater.setdefault(t.rater, []).append(t)
    out: list[ProtocolTrial] = []
    for r_index, (rater, trials) in enumerate(by_rater.items()):
        trials = sorted(trials, key=lambda t: t.position)
        rng = _rng(seed, r_index)
        practice = _practice(rater, practice_cases, arms, rng)
        main = _with_catch(rater, trials, arms, catch_fraction, list(catch_kinds), rng)
        offset = len(practice)
        out += practice
        out += [
            replace(
                t,
                position=t.position + offset,
                repeat_of=None if t.repeat_of is None else t.repeat_of + offset,
            )
            for t in main
        ]
    return out


def _practice(
    rater: int, cases: Sequence[int], arms: Sequence[int], rng: np.random.Generator
) -> list[ProtocolTrial]:
    order = [cases[i] for i in rng.permutation(len(cases))]
    first = int(rng.integers(0, 2))
    a, b = arms[0], arms[1]
    return [
        ProtocolTrial(
            rater, k, case, *((a, b) if (k + first) % 2 == 0 else (b, a)), phase="practice"
        )
        for k, case in enumerate(order)
    ]


def _with_catch(
    rater: int,
    trials: list[DesignTrial],
    arms: Sequence[int],
    fraction: float,
    kinds: list[CatchKind],
    rng: np.random.Generator,
) -> list[ProtocolTrial]:
    """Main trials (positions renumbered from 0) with the rater's catch trials inserted."""
    base = [
        ProtocolTrial(
            t.rater, t.position, t.case, t.left_arm, t.right_arm, t.is_repeat, t.repeat_of
        )
        for t in trials
    ]
    n_catch = round(fraction * len(base))
    if n_catch == 0 or not base:
        return base
    cases = sorted({t.case for t in base})
    catch_cases = [cases[i % len(cases)] for i in rng.permutation(max(n_catch, len(cases)))][
        :n_catch
    ]
    start_kind = int(rng.integers(0, len(kinds)))
    start_arm = int(rng.integers(0, len(arms)))
    start_side = int(rng.integers(0, 2))
    catches: list[ProtocolTrial] = []
    for k, case in enumerate(catch_cases):
        kind = kinds[(start_kind + k) % len(kinds)]
        arm = arms[(start_arm + k // len(kinds)) % len(arms)]
        other = arms[1] if arm == arms[0] else arms[0]
        side: Literal["left", "right"] = (
            "left" if (start_side + k // len(kinds)) % 2 == 0 else "right"
        )
        left, right = (arm, other) if side == "left" else (other, arm)
        catches.append(
            ProtocolTrial(
                rater,
                -1,
                case,
                left,
                right,
                catch=kind,
                catch_arm=arm,
                real_side=side if kind == "randomised" else None,
            )
        )
    # Insert each catch trial after a seeded main position, then move it to the nearest gap
    # where neither neighbour shows the same case; never before the first main trial.
    seq: list[ProtocolTrial] = list(base)
    slots = sorted(int(s) for s in rng.choice(np.arange(1, len(base) + 1), size=n_catch))
    for slot, trial in zip(reversed(slots), reversed(catches), strict=True):
        spot = _free_spot(seq, slot, trial.case)
        seq.insert(spot, trial)
    # renumber: positions 0.., repeat_of follows its original
    new_position = {id(t): k for k, t in enumerate(seq)}
    old_to_new = {t.position: new_position[id(t)] for t in base}
    return [
        replace(
            t,
            position=k,
            repeat_of=None if t.repeat_of is None else old_to_new[t.repeat_of],
        )
        for k, t in enumerate(seq)
    ]


def _free_spot(seq: list[ProtocolTrial], slot: int, case: int) -> int:
    """The insertion index nearest to `slot` (≥ 1) whose neighbours show another case."""

    def ok(i: int) -> bool:
        before = seq[i - 1].case if i - 1 >= 0 else None
        after = seq[i].case if i < len(seq) else None
        return case not in (before, after)

    for d in range(len(seq) + 1):
        for i in (slot + d, slot - d):
            if 1 <= i <= len(seq) and ok(i):
                return i
    return max(1, min(slot, len(seq)))
