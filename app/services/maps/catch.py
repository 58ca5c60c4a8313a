"""The maps catch trials need beyond the arms' own: randomised-weights maps (issue 15).

A ``randomised`` catch trial shows an arm's real map against the map of the *same* checkpoint
with every weight re-initialised (the model-randomisation sanity check, Adebayo et al. 2018).
Those maps go through the one pipeline like every other map (generation tasks with
``variant="randomised"``, app.services.inference), so post-processing, colour mapping, file
format and size are identical and nothing in the files tells a real map from a randomised one.
They are stored as maps of the catch arm under the target ``<target>|randomised``: arms stay
the study's real conditions, and the rater's file route picks the variant per slot.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Study, Trial

RANDOMISED = "randomised"
VARIANT_SEPARATOR = "|"


def variant_target(target: str, variant: str | None) -> str:
    """The stored target of a map variant (the plain target for the arm's own map)."""
    return target if not variant else f"{target}{VARIANT_SEPARATOR}{variant}"


def randomisation_seed(checkpoint_sha256: str) -> int:
    """A fixed seed per checkpoint: every image gets the same randomised model, reproducibly."""
    return int(
        hashlib.sha256(f"radsal-randomised:{checkpoint_sha256}".encode()).hexdigest()[:8], 16
    )


def study_image_ids(study: Study) -> list[int]:
    """Every image the study shows: its cases, then practice cases that are not among them."""
    cases = [si.image_id for si in study.images]
    raw = (study.protocol or {}).get("practice_image_ids") or []
    extra = [int(i) for i in raw if int(i) not in set(cases)]
    return cases + extra


def randomised_pairs(db: Session, study_id: int) -> dict[int, list[int]]:
    """arm id → image ids (sorted) that some randomised catch trial of the study shows."""
    out: dict[int, set[int]] = {}
    for image_id, protocol in db.execute(
        select(Trial.image_id, Trial.protocol).where(
            Trial.study_id == study_id, Trial.protocol.is_not(None)
        )
    ):
        proto = dict(protocol or {})
        if proto.get("catch") == RANDOMISED and proto.get("catch_arm") is not None:
            out.setdefault(int(proto["catch_arm"]), set()).add(int(image_id))
    return {arm: sorted(images) for arm, images in out.items()}
