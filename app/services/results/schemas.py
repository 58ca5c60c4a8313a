"""Response body of `GET /api/v1/studies/{id}/analysis` (researcher-only: arms unblinded).

`analyze_snapshot` builds the dict (the analysis page, the HTML report, the CLI and the
benchmark read it as such); this model is the contract the route declares. The top level, the
design summary, per-rater progress and each item's frame are typed field by field. The
statistics inside an item (descriptives, distributions, paired comparisons, agreement,
mixed model), the preference tests and the blinding check stay `dict[str, Any]` / lists of
them on purpose: their keys follow app.stats and vary with the tests that could be run (a
Friedman test only with more than two arms, agreement only with two raters, ...), so a full
model there would break on every new statistic without telling a client anything stable.
Every number in them is finite or null (`app.stats.frames.clean`).

`extra="forbid"` on the typed levels: a key added to the analysis without its field here
fails loudly in the tests instead of being dropped silently from the response.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.services.catalog.schemas import IsoDateTime

Stats = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmSummary(_Body):
    """One arm, unblinded: what produced its maps."""

    label: str
    position: int
    checkpoint: str
    checkpoint_sha256: str
    bn_route: str | None
    method: str


class DesignSummary(_Body):
    """The design facts a methods section needs."""

    id: int
    name: str
    status: str
    seed: int
    repeat_fraction: float
    analysis_plan: dict[str, Any] | None
    saliency: dict[str, Any]
    n_raters: int
    n_cases: int
    n_trials: int
    n_rated: int
    items: list[dict[str, Any]]
    arms: list[ArmSummary]


class RaterProgress(_Body):
    """How far one rater got (the analysis uses the trials that were rated)."""

    rater: str
    done: int
    total: int
    repeats_done: int


class Bootstrap(_Body):
    """Resampling settings, so a reader can reproduce every interval."""

    n_boot: int
    seed: int


class ItemAnalysis(_Body):
    """Every score-based statistic for one Likert item; empty/null when nothing was rated."""

    key: str
    levels: list[int]
    n_scores: int
    descriptives: list[Stats]
    distribution: list[Stats]
    comparisons: list[Stats]
    multi_arm: Stats | None
    agreement: Stats | None
    intra_rater: Stats | None
    mixed_model: Stats | None
    reviewer: Stats | None = Field(
        description="Readers and cases random: `mrmc` (OR-MRMC of the mean score difference, "
        "jackknife covariances, Hillis df), `vgc` (VGC curve and AUC_VGC per comparison, "
        "two-way bootstrap CI), `two_way` (two-way bootstrap CIs of the headline numbers), "
        "`power` (simulated power of a next study); each carries `note` when it cannot run."
    )
    clmm: Stats | None = Field(
        description="Cumulative link mixed model fitted by R (ordinal::clmm): `status` ok | "
        "partial | running | skipped | unavailable | failed, `message`, `primary` and "
        "`sensitivity` fits (odds ratios with 95% CI, thresholds, random effects), `software`."
    )


class AnalysisOut(_Body):
    """The full analysis of a study on the ratings that exist now (stable top-level keys)."""

    arms: list[str]
    reference_arm: str | None
    items: list[ItemAnalysis]
    preferences: list[Stats]
    blinding: Stats | None
    bootstrap: Bootstrap
    quality: Stats = Field(description="Rater quality flags per rater, with thresholds.")
    preregistration: Stats | None = Field(
        description="The (pre-registered or default) primary analysis and its result."
    )
    study: DesignSummary
    progress: list[RaterProgress]
    warnings: list[str]
    empty: bool
    message: str | None
    methods: str
    # Issue 15: practice, flags, catch-trial performance, blinding check (app.services.results
    # .protocol) and the localisation endpoint per arm (null when the study has no such item).
    protocol: Stats
    localisation: Stats | None


class DesignExport(BaseModel):
    """`?format=json` of the export: the design plus every trial and its answer, by arm.

    A downloaded file (its bytes are the export, not re-serialised here); the model documents
    its top level in `/openapi.json`. The rows of study, arms, cases and trials are built by
    `formats.design_json` and stay objects here (see the module docstring).
    """

    format: str
    exported_at: IsoDateTime
    study: dict[str, Any]
    arms: list[dict[str, Any]]
    raters: list[str]
    cases: list[dict[str, Any]]
    trials: list[dict[str, Any]]
