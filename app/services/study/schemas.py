"""Response bodies of the studies API (`/api/v1/studies...`), declared for `/openapi.json`.

`studies.study_json` builds the dict (the study page renders it too); these models are the
contract the routes declare. The stored settings (`items`, `saliency`) are typed with the
fields :mod:`app.services.study.spec` defines and let extra keys through, so a study stored by an
older version is still returned as it was stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.services.catalog.schemas import IsoDateTime


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoredItemOut(BaseModel):
    """One rating item as stored (see ``spec.ItemSpec``)."""

    model_config = ConfigDict(extra="allow")

    key: str
    kind: str
    question: str | None = None
    scale: int | None = None
    anchors: list[str] | None = None
    required: bool | None = None


class StoredSaliencyOut(BaseModel):
    """The saliency settings as stored (see ``spec.SaliencySpec``)."""

    model_config = ConfigDict(extra="allow")

    target: str | None = None
    postprocess: str | None = None
    postprocess_params: dict[str, float] | None = None
    colormap: str | None = None
    opacity: float | None = None


class ArmOut(_Out):
    """An arm, unblinded: staff only."""

    id: int
    position: int
    label: str | None
    checkpoint_id: int
    checkpoint_name: str
    bn_route: str | None
    method: str
    params: dict[str, Any] | None


class RaterProgressOut(_Out):
    """One rater's progress: trials answered of assigned, last answer, median seconds/trial."""

    username: str
    display_name: str
    done: int
    total: int
    last_activity: IsoDateTime | None
    median_seconds: float | None


class DoneOfOut(_Out):
    done: int
    total: int


class StudyOut(_Out):
    """A study as staff see it: settings, arms with checkpoints, raters, maps and ratings."""

    id: int
    name: str
    status: str
    instructions: str
    seed: int
    items: list[StoredItemOut] | None
    saliency: StoredSaliencyOut | None
    allow_back: bool
    repeat_fraction: float
    # practice, catch trials, anchor-and-rotate, per-case text (ProtocolSpec's fields)
    protocol: dict[str, Any]
    # pre-registered primary analysis {primary_analysis, alpha, item, registered_at}, or null
    analysis_plan: dict[str, Any] | None
    image_ids: list[int]
    arms: list[ArmOut]
    raters: list[RaterProgressOut]
    maps: DoneOfOut
    ratings: DoneOfOut
    design_frozen_at: IsoDateTime | None
    opened_at: IsoDateTime | None
    closed_at: IsoDateTime | None
    latest_job_id: int | None


class LiveJobOut(BaseModel):
    id: int
    status: str
    done: int
    total: int
    error: str | None
    rate: float | None
    eta_seconds: float | None


class LiveRaterOut(BaseModel):
    username: str
    display_name: str
    done: int
    total: int
    last_activity: dt.datetime | None
    median_seconds: float | None


class StudyLiveOut(BaseModel):
    """`status_label` is what a person should read ("maps ready", "generating maps", …)."""

    id: int
    status: str
    status_label: str
    maps_done: int
    maps_total: int
    maps_ready: bool
    job: LiveJobOut | None
    job_active: bool
    ratings_done: int
    ratings_total: int
    raters: list[LiveRaterOut]
