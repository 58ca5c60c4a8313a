"""Response models of the reading domain's JSON routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.services.reading.browse import BrowsedTrial, TrialPage


class TrialPageOut(BaseModel):
    """One page (100 trials) of a study's trials, by rater then position."""

    trials: list[BrowsedTrial]
    page: int
    pages: int
    total: int
    raters: list[str]
    arms: dict[str, str]
    items: list[str]

    @classmethod
    def of(cls, page: TrialPage) -> TrialPageOut:
        return cls(
            trials=page.trials,
            page=page.page,
            pages=page.pages,
            total=page.total,
            raters=page.raters,
            arms={str(k): v for k, v in page.arms.items()},
            items=page.items,
        )


class _RaterOut(BaseModel):
    """Rater-facing bodies: the declared fields are the contract; keys added by newer protocol
    features pass through (``extra="allow"``) rather than being silently dropped. Nothing here
    may name an arm, checkpoint, method, map or image id (the blinding crawl test checks)."""

    model_config = ConfigDict(extra="allow")


class TrialStudyOut(_RaterOut):
    id: int
    name: str
    instructions: str | None = None
    allow_back: bool | None = None


class TrialAnswerOut(_RaterOut):
    """The caller's current answer, in the sides they saw (prefills an edit)."""

    left_score: int | None
    right_score: int | None
    scores: dict[str, Any]
    preference: str | None
    comment: str | None
    revision: int
    updated_at: str


class TrialViewOut(_RaterOut):
    """One trial as its rater sees it: opaque token, slot URLs, the study's questions."""

    done: Literal[False]
    token: str
    position: int
    total: int
    answered: int
    study: TrialStudyOut
    items: list[dict[str, Any]]
    page_url: str
    viewer_url: str
    image_url: str
    map_a_url: str
    map_b_url: str
    rating_url: str
    map_urls: dict[str, str]
    previous_url: str | None
    next_url: str | None
    resume_url: str
    rating: TrialAnswerOut | None


class DoneViewOut(_RaterOut):
    """Every trial answered: the progress, and where the rater goes next."""

    done: Literal[True]
    study: TrialStudyOut
    total: int
    answered: int
    done_url: str
