"""What a researcher submits to create a study (`POST /api/v1/studies`), validated by pydantic.

Only the shape is checked here; everything that needs the database (checkpoints exist, raters
have the rater role, images fit every arm's input) is checked in app.services.study.studies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_LIKERT_QUESTION = (
    "How well does this map highlight the image regions that support the finding?"
)
DEFAULT_ITEMS: list[dict[str, Any]] = [
    {
        "key": "highlight",
        "kind": "likert",
        "question": DEFAULT_LIKERT_QUESTION,
        "scale": 5,
        "anchors": ["Not at all", "Very well"],
        "required": True,
    },
    {
        "key": "preference",
        "kind": "preference",
        "question": "Which map do you prefer?",
        "required": True,
    },
    {"key": "comment", "kind": "comment", "question": "Comment (optional)", "required": False},
]
COLORMAPS = ("jet", "inferno", "viridis", "hot", "gray")


class ItemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["likert", "preference", "comment"]
    question: str = Field(default="", max_length=500)
    scale: int | None = Field(default=None, ge=2, le=11)
    anchors: list[str] | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _likert_fields(self) -> ItemSpec:
        if self.kind == "likert":
            self.scale = self.scale or 5
            anchors = list(self.anchors or ["", ""])
            if len(anchors) != 2:
                raise ValueError("a Likert item takes two anchors (low, high)")
            self.anchors = [a[:80] for a in anchors]
            self.question = self.question or DEFAULT_LIKERT_QUESTION
        elif self.scale is not None or self.anchors is not None:
            raise ValueError(f"a {self.kind} item has no scale or anchors")
        if self.required is None:
            self.required = self.kind != "comment"
        return self


class SaliencySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = "predicted"
    postprocess: Literal["clip_std", "percentile"] = "clip_std"
    postprocess_params: dict[str, float] = Field(default_factory=dict)
    colormap: str = "jet"
    opacity: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value in ("predicted", "ground_truth") or (
            value.startswith("class:") and len(value) > len("class:")
        ):
            return value
        raise ValueError("target must be 'predicted', 'ground_truth' or 'class:<name>'")

    @field_validator("colormap")
    @classmethod
    def _colormap(cls, value: str) -> str:
        if value not in COLORMAPS:
            raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}")
        return value


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint_id: int
    bn_route: Literal["clean", "adv"] | None = None
    method: str = "gradient"
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, max_length=120)


class StudySpec(BaseModel):
    """The study contract (DESIGN.md): name, image_ids, arms, raters, seed; the rest optional."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="", max_length=20_000)
    image_ids: list[int] = Field(min_length=1)
    arms: list[ArmSpec]
    raters: list[str] = Field(min_length=1)
    seed: int = Field(ge=0, le=2**31 - 1)
    items: list[ItemSpec] | None = None
    saliency: SaliencySpec = Field(default_factory=SaliencySpec)
    allow_back: bool = True
    repeat_fraction: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value

    @model_validator(mode="after")
    def _shape(self) -> StudySpec:
        if len(self.arms) < 2:
            raise ValueError("a study needs at least two arms")
        if len(set(self.image_ids)) != len(self.image_ids):
            raise ValueError("image_ids contains duplicates")
        if len(set(self.raters)) != len(self.raters):
            raise ValueError("raters contains duplicates")
        keys = [(a.checkpoint_id, a.bn_route, a.method) for a in self.arms]
        if len(set(keys)) != len(keys):
            raise ValueError("two arms are identical (same checkpoint, BN route and method)")
        if self.items is not None:
            names = [i.key for i in self.items]
            if len(set(names)) != len(names):
                raise ValueError("rating item keys must be unique")
            if not any(i.kind == "likert" for i in self.items):
                raise ValueError("at least one Likert item is needed")
        return self

    def item_dicts(self) -> list[dict[str, Any]]:
        if self.items is None:
            return [dict(i) for i in DEFAULT_ITEMS]
        return [i.model_dump() for i in self.items]
