"""What a researcher submits to create a study (`POST /api/v1/studies`), validated by pydantic.

Only the shape is checked here; everything that needs the database (checkpoints exist, raters
have the rater role, images fit every arm's input) is checked in app.services.study.studies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    field_validator,
    model_validator,
)

from app.ids import BodyInt
from app.services import inference
from app.services.study.protocol import ProtocolSpec

# Every default of a study's settings lives in this module, once: the rating items' wording
# and scale, the saliency settings (target, post-processing, colormap, opacity) and the
# protocol options. The choice lists (colormaps, post-processing modes, methods) come from the
# bridge, which reads them from ml, so the form, the validation and the renderer agree; they are
# asked for when needed, not at import, so the web server starts without loading ml at all.
DEFAULT_LIKERT_QUESTION = (
    "How well does this map highlight the image regions that support the finding?"
)
DEFAULT_SCALE = 5
DEFAULT_QUESTIONS: dict[str, str] = {
    "likert": DEFAULT_LIKERT_QUESTION,
    "preference": "Which map do you prefer?",
    "comment": "Comment",  # the trial page marks an optional item "(optional)" itself
    # Protocol item kinds (issue 15; answers in app.services.reading.answers)
    "confidence": "How confident are you in this answer?",
    "blinding": "Which map do you think came from the second model?",
    "localise": "Mark the region that supports the finding",
}
DEFAULT_ITEMS: list[dict[str, Any]] = [
    {
        "key": "highlight",
        "kind": "likert",
        "question": DEFAULT_QUESTIONS["likert"],
        "scale": DEFAULT_SCALE,
        "anchors": ["Not at all", "Very well"],
        "required": True,
    },
    {
        "key": "preference",
        "kind": "preference",
        "question": DEFAULT_QUESTIONS["preference"],
        "required": True,
    },
    {
        "key": "comment",
        "kind": "comment",
        "question": DEFAULT_QUESTIONS["comment"],
        "required": False,
    },
]
DEFAULT_TARGET = "predicted"
DEFAULT_POSTPROCESS = "clip_std"
DEFAULT_COLORMAP = "jet"
DEFAULT_OPACITY = 0.5
DEFAULT_METHOD = "gradient"
DEFAULT_ALLOW_BACK = True
DEFAULT_REPEAT_FRACTION = 0.0


class ItemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["likert", "preference", "comment", "confidence", "blinding", "localise"]
    question: str = Field(default="", max_length=500)
    scale: BodyInt | None = Field(default=None, ge=2, le=11)
    anchors: list[str] | None = None
    required: StrictBool | None = None
    # blinding only: asked on every main trial or once, on the rater's last trial; and which
    # arm (by position) the guess is about (default the second arm)
    when: Literal["trial", "end"] | None = None
    target_arm: BodyInt | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _likert_fields(self) -> ItemSpec:
        if self.kind == "likert":
            self.scale = self.scale or DEFAULT_SCALE
            anchors = list(self.anchors or ["", ""])
            if len(anchors) != 2:
                raise ValueError("a Likert item takes two anchors (low, high)")
            self.anchors = [a[:80] for a in anchors]
        elif self.scale is not None or self.anchors is not None:
            raise ValueError(f"a {self.kind} item has no scale or anchors")
        self.question = self.question or DEFAULT_QUESTIONS[self.kind]
        if self.required is None:
            self.required = self.kind != "comment"
        if self.kind == "blinding":
            self.when = self.when or "trial"
            self.target_arm = 1 if self.target_arm is None else self.target_arm
        elif self.when is not None or self.target_arm is not None:
            raise ValueError(f"a {self.kind} item has no 'when' or 'target_arm'")
        return self


class SaliencySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = DEFAULT_TARGET
    postprocess: str = DEFAULT_POSTPROCESS
    postprocess_params: dict[str, StrictFloat] = Field(default_factory=dict)
    colormap: str = DEFAULT_COLORMAP
    opacity: StrictFloat = Field(default=DEFAULT_OPACITY, ge=0.0, le=1.0)

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
        allowed = inference.colormaps()
        if value not in allowed:
            raise ValueError(f"colormap must be one of {', '.join(allowed)}")
        return value

    @field_validator("postprocess")
    @classmethod
    def _postprocess(cls, value: str) -> str:
        allowed = inference.postprocess_modes()
        if value not in allowed:
            raise ValueError(f"postprocess must be one of {', '.join(allowed)}")
        return value


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint_id: BodyInt
    bn_route: Literal["clean", "adv"] | None = None
    method: str = DEFAULT_METHOD
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, max_length=120)


PRIMARY_ANALYSES = ("or_mrmc", "clmm", "vgc", "wilcoxon_case_means", "wilcoxon", "lmm")


class AnalysisPlanSpec(BaseModel):
    """The pre-registered primary analysis (app.stats.reviewer.PRIMARY_ANALYSES) and its alpha;
    `item` defaults to the first Likert item."""

    model_config = ConfigDict(extra="forbid")

    primary_analysis: Literal["or_mrmc", "clmm", "vgc", "wilcoxon_case_means", "wilcoxon", "lmm"]
    alpha: StrictFloat = Field(default=0.05, gt=0.0, le=0.5)
    item: str | None = Field(default=None, max_length=40)


class StudySpec(BaseModel):
    """The study contract (DESIGN.md): name, image_ids, arms, raters, seed; the rest optional."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="", max_length=20_000)
    image_ids: list[BodyInt] = Field(min_length=1)
    arms: list[ArmSpec]
    raters: list[str] = Field(min_length=1)
    seed: BodyInt = Field(ge=0, le=2**31 - 1)
    items: list[ItemSpec] | None = None
    saliency: SaliencySpec = Field(default_factory=SaliencySpec)
    allow_back: StrictBool = DEFAULT_ALLOW_BACK
    repeat_fraction: StrictFloat = Field(default=DEFAULT_REPEAT_FRACTION, ge=0.0, le=1.0)
    # Practice block, catch trials, anchor-and-rotate design, per-case text (issue 15).
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    # Pre-registration: the primary analysis and alpha, fixed before the study opens (issue 14).
    analysis_plan: AnalysisPlanSpec | None = None

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
            for kind in ("confidence", "blinding", "localise"):
                if sum(i.kind == kind for i in self.items) > 1:
                    raise ValueError(f"a study has at most one {kind} item")
            for item in self.items:
                if item.target_arm is not None and item.target_arm >= len(self.arms):
                    raise ValueError("the blinding item's target_arm is not an arm of the study")
        self.protocol.check_cases(self.image_ids, len(self.raters))
        plan_item = self.analysis_plan.item if self.analysis_plan else None
        if plan_item is not None:
            likert = [i["key"] for i in self.item_dicts() if i["kind"] == "likert"]
            if plan_item not in likert:
                raise ValueError(f"analysis_plan.item {plan_item!r} is not a Likert item")
        return self

    def plan_dict(self) -> dict[str, Any]:
        """The stored form of the analysis plan ({} when none), stamped when registered."""
        if self.analysis_plan is None:
            return {}
        registered = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return {**self.analysis_plan.model_dump(), "registered_at": registered}

    def item_dicts(self) -> list[dict[str, Any]]:
        if self.items is None:
            return [dict(i) for i in DEFAULT_ITEMS]
        return [
            {
                k: v
                for k, v in i.model_dump().items()
                if k not in ("when", "target_arm") or v is not None
            }
            for i in self.items
        ]


# --- reading what a study stored (its JSON columns keep the shape StudySpec dumps) ------------


class SaliencySettings(BaseModel):
    """A stored study's saliency settings, every field filled in with the one default.

    Lenient where StudySpec is strict: a study stored by an older version (or a unknown key)
    still loads. ``overlay_opacity`` is the legacy spelling of ``opacity`` and is read as it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    target: str = DEFAULT_TARGET
    postprocess: str = DEFAULT_POSTPROCESS
    postprocess_params: dict[str, float] = Field(default_factory=dict)
    colormap: str = DEFAULT_COLORMAP
    opacity: float = DEFAULT_OPACITY


def saliency_settings(stored: Mapping[str, Any] | None) -> SaliencySettings:
    """The typed view of ``Study.saliency``; services read attributes, never ``dict.get``."""
    raw = dict(stored or {})
    if "opacity" not in raw and "overlay_opacity" in raw:
        raw["opacity"] = raw["overlay_opacity"]
    opacity = raw.get("opacity")
    if not isinstance(opacity, int | float) or isinstance(opacity, bool):
        raw.pop("opacity", None)
    else:
        raw["opacity"] = min(max(float(opacity), 0.0), 1.0)
    return SaliencySettings.model_validate(
        {k: v for k, v in raw.items() if v is not None and k in SaliencySettings.model_fields}
    )


def rating_items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The study's rating items with every field filled in; the defaults when none are set."""
    source = items or [dict(i) for i in DEFAULT_ITEMS]
    out: list[dict[str, Any]] = []
    for raw in source:
        kind = str(raw.get("kind", "likert"))
        item: dict[str, Any] = {
            "key": str(raw.get("key") or kind),
            "kind": kind,
            "question": str(raw.get("question") or "") or DEFAULT_QUESTIONS.get(kind, ""),
            "required": bool(raw.get("required", kind != "comment")),
        }
        if kind == "blinding":
            item["when"] = "end" if raw.get("when") == "end" else "trial"
            item["target_arm"] = int(raw.get("target_arm") or 1)
        if kind == "likert":
            item["scale"] = int(raw.get("scale") or DEFAULT_SCALE)
            anchors = list(raw.get("anchors") or ["", ""])
            item["anchors"] = [str(a) for a in [*anchors, "", ""][:2]]
        out.append(item)
    return out
