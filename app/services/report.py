"""Figures, the generated methods paragraph and the standalone HTML report.

The report is one self-contained HTML file (figures embedded as data URIs, CSS inline) that a
researcher can attach to a manuscript or send to a co-author: no server, no external assets.
Jinja2 is used directly (not through FastAPI) because services never import the web layer.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT
from app.errors import NotFound
from app.stats import plots

_env = Environment(
    loader=FileSystemLoader(str(PROJECT_ROOT / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _join(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _versions() -> str:
    parts = []
    for pkg in ("scipy", "statsmodels", "krippendorff", "scikit-learn"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def methods_paragraph(analysis: Mapping[str, Any]) -> str:
    """A methods paragraph generated from the design and the tests actually run."""
    study = analysis["study"]
    arms = [a["label"] for a in study["arms"]]
    likert = [i for i in study["items"] if i.get("kind") == "likert"]
    has_pref = any(i.get("kind") == "preference" for i in study["items"])
    boot = analysis.get("bootstrap", {})
    n_rated = study["n_rated"]
    text = [
        f"{study['n_raters']} raters each read {study['n_cases']} cases in a blinded, paired "
        f"design comparing {len(arms)} saliency-map conditions ({_join(arms)}). "
        "Every trial showed the image with two maps side by side, labelled only A and B, with "
        "the left/right position counterbalanced within each rater and the order of cases "
        f"randomised per rater (seed {study['seed']}).",
    ]
    if likert:
        item_text = _join(
            [f"\u201c{i['question']}\u201d (1\u2013{i.get('scale', 5)})" for i in likert]
        )
        count = "one Likert item" if len(likert) == 1 else f"{len(likert)} Likert items"
        text.append(f"Raters scored each map on {count}: {item_text}.")
    if has_pref:
        text.append("They also stated which map they preferred, or no preference.")
    text.append(
        f"{n_rated} of {study['n_trials']} assigned trials were rated and analysed"
        + (f"; a fraction of {study['repeat_fraction']:g} of trials were repeated with sides "
           "flipped to measure intra-rater reliability" if study["repeat_fraction"] else "")
        + ". Repeated readings were excluded from all primary analyses."
    )  # fmt: skip
    if len(arms) >= 2:
        ref = arms[0]
        text.append(
            "Scores are summarised per arm as mean (SD) and median (IQR). Mean paired "
            "differences are given with 95% confidence intervals robust to clustering by case "
            "(cluster-robust standard errors). Paired score "
            f"differences (each arm minus {ref}) per rater and case were tested with the "
            "two-sided Wilcoxon signed-rank test with Pratt's treatment of zero differences; "
            "the effect size is the matched-pairs rank-biserial correlation with a 95% "
            f"percentile bootstrap confidence interval ({boot.get('n_boot', 0)} resamples of "
            "cases). The same test was repeated on per-case means over raters and within each "
            "rater."
        )
        if len(arms) > 2:
            text.append(
                "Because the study had more than two arms, Friedman's test over complete "
                "(rater, case) blocks preceded pairwise Wilcoxon tests with Holm's correction."
            )
        if has_pref:
            text.append(
                "Preferences were tested against no preference with a two-sided exact binomial "
                "test, excluding \u201cno preference\u201d answers (reported separately); a "
                "side-bias check tested whether the left map was preferred more often than the "
                "right."
            )
        text.append(
            "Inter-rater agreement was measured per arm and over all maps with Krippendorff's "
            "alpha (ordinal metric, missing ratings allowed) and with the two-way random-"
            "effects, absolute-agreement intraclass correlation for single and average raters "
            "(ICC(2,1), ICC(2,k); Shrout & Fleiss 1979) with F-based 95% confidence intervals."
        )
        if study["repeat_fraction"]:
            text.append(
                "Intra-rater agreement between first and repeated readings was measured with "
                "quadratically weighted Cohen's kappa."
            )
        text.append(
            "A linear mixed model with arm as a fixed effect and crossed random intercepts for "
            "rater and case was fitted by REML; the exported R script fits the corresponding "
            "cumulative link mixed model (ordinal::clmm) for the ordinal scores."
        )
    text.append(f"Analyses used radsal with {_versions()}.")
    return " ".join(text)


def _figure_makers(
    analysis: Mapping[str, Any], fmt: plots.Format
) -> dict[str, Callable[[], bytes]]:
    """Every figure of the analysis by stable name, drawn only when called."""
    study = analysis["study"]
    out: dict[str, Callable[[], bytes]] = {}
    for item in analysis["items"]:
        if not (item.get("n_scores") and item.get("distribution")):
            continue
        key = item["key"]
        spec: Mapping[str, Any] = next((i for i in study["items"] if i.get("key") == key), {})
        out[f"likert-{key}"] = partial(
            plots.likert_diverging,
            item["distribution"],
            item["levels"],
            title=spec.get("question", key),
            anchors=spec.get("anchors") or None,
            fmt=fmt,
        )
        out[f"agreement-{key}"] = partial(plots.agreement_table, item["agreement"], fmt=fmt)
        for k, comp in enumerate(item["comparisons"]):
            out[f"forest-{key}-{k}"] = partial(
                plots.forest_plot,
                comp["per_rater"],
                comp["rater_case"],
                difference=comp["difference"],
                fmt=fmt,
            )
    for k, pref in enumerate(analysis["preferences"]):
        if pref["n_trials"]:
            out[f"preference-{k}"] = partial(plots.preference_bars, pref, fmt=fmt)
    return out


def figures(analysis: Mapping[str, Any], fmt: plots.Format = "png") -> dict[str, bytes]:
    """Every figure of the analysis, keyed by a stable name (also the download file name)."""
    return {name: make() for name, make in _figure_makers(analysis, fmt).items()}


def figure(analysis: Mapping[str, Any], name: str, fmt: plots.Format) -> bytes:
    """One figure by name (for PNG/SVG downloads); only that one is drawn."""
    make = _figure_makers(analysis, fmt).get(name)
    if make is None:
        raise NotFound(f"No figure named {name!r} in this analysis.")
    return make()


def data_uris(analysis: Mapping[str, Any]) -> dict[str, str]:
    """Figures as PNG data URIs for embedding in a page or the standalone report."""
    return {
        name: "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        for name, data in figures(analysis, "png").items()
    }


def render_report(analysis: Mapping[str, Any]) -> str:
    """The standalone HTML report."""
    template = _env.get_template("report.html")
    return template.render(
        a=analysis,
        figs=data_uris(analysis),
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        standalone=True,
    )


def page_context(db: Session, study_id: int) -> dict[str, Any]:
    """What the analysis page renders: the analysis and its figures as data URIs."""
    from app.services.analysis import analyze_study

    analysis = analyze_study(db, study_id)
    return {"a": analysis, "figs": data_uris(analysis), "standalone": False}


def report_html(db: Session, study_id: int) -> tuple[str, str]:
    """(standalone HTML report, file name) for study `study_id`."""
    from app.services.analysis import analyze_study

    return render_report(analyze_study(db, study_id)), f"radsal-study-{study_id}-report.html"


def figure_file(db: Session, study_id: int, filename: str) -> tuple[bytes, str]:
    """(bytes, media type) of one figure, `filename` being `<name>.png` or `<name>.svg`."""
    from app.services.analysis import analyze_study

    name, _, ext = filename.rpartition(".")
    if ext not in ("png", "svg") or not name:
        raise NotFound("Figures are available as .png or .svg.")
    data = figure(analyze_study(db, study_id), name, "png" if ext == "png" else "svg")
    return data, "image/png" if ext == "png" else "image/svg+xml"
