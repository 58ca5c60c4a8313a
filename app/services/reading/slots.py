"""Which map fills a trial's slot: the one rule every rater-facing file route follows.

Slot "a" is the trial's left arm and "b" its right arm — except on catch trials (issue 15),
whose stored arms stay a valid pair while the slots show: for ``same``, the catch arm's map on
both sides; for ``randomised``, the catch arm's real map on ``real_side`` and the map of the
same checkpoint with randomised weights on the other. The URLs, tokens, ETags and payloads are
built exactly as for any trial, so nothing but the pictures differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement

from app.models import SaliencyMap
from app.services.maps.catch import RANDOMISED, VARIANT_SEPARATOR, variant_target

MAP_SLOTS = ("a", "b")


def slot_map(
    slot: str, left_arm_id: int, right_arm_id: int, protocol: Mapping[str, Any] | None
) -> tuple[int, str | None]:
    """(arm id, map variant or None) whose map the trial shows in `slot` ('a' or 'b')."""
    if slot not in MAP_SLOTS:
        raise ValueError(f"not a map slot: {slot!r}")
    side = "left" if slot == "a" else "right"
    proto = dict(protocol or {})
    catch, arm = proto.get("catch"), proto.get("catch_arm")
    if catch == "same" and arm is not None:
        return int(arm), None
    if catch == RANDOMISED and arm is not None:
        return int(arm), None if side == proto.get("real_side") else RANDOMISED
    return (left_arm_id if side == "left" else right_arm_id), None


def slot_target(
    slot: str,
    left_arm_id: int,
    right_arm_id: int,
    protocol: Mapping[str, Any] | None,
    target: str,
) -> tuple[int, str]:
    """(arm id, stored map target) for `slot`, given the study's target policy."""
    arm, variant = slot_map(slot, left_arm_id, right_arm_id, protocol)
    return arm, variant_target(target, variant)


def variant_clause(variant: str | None) -> ColumnElement[bool]:
    """SQL condition on `SaliencyMap.target` selecting an arm's own maps or one variant."""
    if variant is None:
        return SaliencyMap.target.not_like(f"%{VARIANT_SEPARATOR}%")
    return SaliencyMap.target.like(f"%{VARIANT_SEPARATOR}{variant}")
