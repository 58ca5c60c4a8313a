"""Response bodies of the maps APIs: jobs (`/api/v1/jobs/{id}`, polled by
static/js/job_progress.js) and a study's map metrics (`/api/v1/studies/{id}/map-metrics`).

`job_json` builds the dict (the jobs pages and the admin dashboard render it too); this model is
the contract the routes declare. `extra="forbid"`: a key added to `job_json` without its field
here fails loudly in the tests instead of being dropped from the response.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.services.catalog.schemas import IsoDateTime

JobStatusName = Literal["queued", "running", "done", "failed", "cancelled"]


class JobOut(BaseModel):
    """A job's progress: `rate` in maps/s and `eta_seconds` once anything is done."""

    model_config = ConfigDict(extra="forbid")

    id: int
    kind: str
    status: JobStatusName
    done: int
    total: int
    error: str
    rate: float | None
    eta_seconds: float | None
    study_id: int | None
    cancel_requested: bool
    created_at: IsoDateTime | None
    started_at: IsoDateTime | None
    finished_at: IsoDateTime | None


class MetricCIOut(BaseModel):
    """One arm's mean of one metric over its non-degenerate cases, with the bootstrap CI."""

    model_config = ConfigDict(extra="forbid")

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None


class MapArmStatsOut(BaseModel):
    """An arm (or a null baseline: `kind` says which) with its per-metric means and CIs."""

    model_config = ConfigDict(extra="forbid")

    arm: str
    kind: str
    n_cases: int
    n_degenerate: int
    degenerate_cases: list[str]
    metrics: dict[str, MetricCIOut]


class MapPairedOut(BaseModel):
    """Paired difference `b − a` of one metric over the cases both arms have."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    metric: str
    n: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    wilcoxon_p: float | None


class MapMetricsOut(BaseModel):
    """`/api/v1/studies/{id}/map-metrics`: `available` is false (and `notes` say why) until
    the study has maps; `mask_area_mean` is the naive chance level of mask energy."""

    model_config = ConfigDict(extra="forbid")

    study_id: int
    available: bool
    target: str
    maps: int
    maps_expected: int
    metrics: list[str]
    n_bootstrap: int
    ci_level: float
    arms: list[MapArmStatsOut]
    paired: list[MapPairedOut]
    mask_area_mean: float | None
    pairs_read_as: str
    notes: list[str]
