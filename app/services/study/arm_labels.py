"""Arm labels as researchers see them, one per arm and unique within the study.

The export, the analysis and the trial browser key on these labels, so they must agree: two
arms both labelled "standard" become "standard" and "standard (2)", an unlabelled arm
"arm <position>".
"""

from __future__ import annotations

from collections.abc import Iterable

from app.models import Arm


def unique_arm_labels(arms: Iterable[Arm]) -> dict[int, str]:
    """Arm id → its label, made unique by appending the 1-based position to a repeated one."""
    out: dict[int, str] = {}
    seen: dict[str, int] = {}
    for arm in arms:
        base = (arm.label or "").strip() or f"arm {arm.position + 1}"
        seen[base] = seen.get(base, 0) + 1
        out[arm.id] = base if seen[base] == 1 else f"{base} ({arm.position + 1})"
    return out
