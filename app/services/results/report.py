"""Figures and the standalone HTML report.

The report is one self-contained HTML file (figures embedded as data URIs, CSS inline) that a
researcher can attach to a manuscript or send to a co-author: no server, no external assets.
Jinja2 is used directly (not through FastAPI) because services never import the web layer.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT
from app.errors import NotFound
from app.services.results.analysis import analyze_study
from app.stats import plots, reviewer_plots

_env = Environment(
    loader=FileSystemLoader(str(PROJECT_ROOT / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


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
        # No figure of the agreement table: it would only repeat the table on the page.
        for k, comp in enumerate(item["comparisons"]):
            out[f"forest-{key}-{k}"] = partial(
                plots.forest_plot,
                comp["per_rater"],
                comp["rater_case"],
                difference=comp["difference"],
                fmt=fmt,
            )
        rv = item.get("reviewer") or {}
        for k, vgc in enumerate(rv.get("vgc") or []):
            if vgc.get("auc") is not None:
                out[f"vgc-{key}-{k}"] = partial(reviewer_plots.vgc_plot, vgc, fmt=fmt)
        if (rv.get("power") or {}).get("grid"):
            out[f"power-{key}"] = partial(reviewer_plots.power_plot, rv["power"], fmt=fmt)
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


def page_context(db: Session, study_id: int, data_dir: Path | None = None) -> dict[str, Any]:
    """What the analysis page renders: the analysis and its figures as data URIs.

    The ordinal model comes from R's cache or starts in the background (the page then says to
    reload): a page never waits for R.
    """
    analysis = analyze_study(db, study_id, data_dir=data_dir, clmm="background")
    return {"a": analysis, "figs": data_uris(analysis), "standalone": False}


def report_html(db: Session, study_id: int, data_dir: Path | None = None) -> tuple[str, str]:
    """(standalone HTML report, file name) for study `study_id` (CLMM as on the page)."""
    analysis = analyze_study(db, study_id, data_dir=data_dir, clmm="background")
    return render_report(analysis), f"radsal-study-{study_id}-report.html"


def figure_file(
    db: Session, study_id: int, filename: str, data_dir: Path | None = None
) -> tuple[bytes, str]:
    """(bytes, media type) of one figure, `filename` being `<name>.png` or `<name>.svg`."""
    name, _, ext = filename.rpartition(".")
    if ext not in ("png", "svg") or not name:
        raise NotFound("Figures are available as .png or .svg.")
    analysis = analyze_study(db, study_id, data_dir=data_dir)
    data = figure(analysis, name, "png" if ext == "png" else "svg")
    return data, "image/png" if ext == "png" else "image/svg+xml"
