"""Figures for the analysis page and report: matplotlib (Agg), PNG or SVG bytes.

Each function takes the dicts the statistics functions return, never raw data, so a plot always
shows exactly the numbers in the tables beside it. `Figure` objects are used directly (no
pyplot state), which keeps concurrent requests from drawing into each other's figures.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Format = Literal["png", "svg"]
_DPI = 150


def _render(fig: Figure, fmt: Format) -> bytes:
    FigureCanvasAgg(fig)  # headless Agg canvas; never touches the global pyplot backend
    buf = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}  # byte-identical SVGs across runs
    # Text stays text in SVG: searchable, selectable and editable by a journal's typesetter.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "radsal"}):
        fig.savefig(buf, format=fmt, dpi=_DPI, bbox_inches="tight", metadata=metadata)
    return buf.getvalue()


def likert_diverging(
    distribution: Sequence[Mapping[str, Any]],
    levels: Sequence[int],
    *,
    title: str = "",
    anchors: Sequence[str] | None = None,
    fmt: Format = "png",
) -> bytes:
    """Diverging stacked bars: low scores left of zero, high scores right, middle split.

    Centring on the neutral level lets the eye compare arms by how far each bar leans right,
    the standard way to show Likert data (Heiberger & Robbins 2014).
    """
    n_levels = len(levels)
    colors = colormaps["RdBu"]([0.1 + 0.8 * i / max(n_levels - 1, 1) for i in range(n_levels)])
    fig = Figure(figsize=(7.0, 0.7 + 0.55 * max(len(distribution), 1)))
    ax = fig.add_subplot()
    mid = (n_levels - 1) / 2.0
    for row_i, row in enumerate(distribution):
        props = [100.0 * float(row["proportions"].get(str(lv)) or 0.0) for lv in levels]
        left = -sum(p for i, p in enumerate(props) if i < mid) - (
            props[int(mid)] / 2.0 if float(mid).is_integer() else 0.0
        )
        for i, p in enumerate(props):
            label = str(levels[i]) if row_i == 0 else None
            ax.barh(row_i, p, left=left, color=colors[i], edgecolor="white", label=label)
            left += p
    ax.set_yticks(range(len(distribution)), [f"{r['arm']} (n={r['n']})" for r in distribution])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("% of ratings")
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{abs(v):.0f}")
    legend_title = f"score ({anchors[0]} … {anchors[-1]})" if anchors else "score"
    ax.legend(
        ncol=n_levels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        frameon=False,
        title=legend_title,
    )
    if title:
        # A rating question can be a sentence: wrapped, it stays inside the figure's width.
        ax.set_title(textwrap.fill(title, 70))
    return _render(fig, fmt)


def forest_plot(
    per_rater: Sequence[Mapping[str, Any]],
    overall: Mapping[str, Any] | None,
    *,
    difference: str,
    fmt: Format = "png",
) -> bytes:
    """Per-rater mean score difference with 95% CI, plus the pooled estimate as a diamond."""
    rows = list(per_rater)
    fig = Figure(figsize=(6.0, 1.0 + 0.4 * (len(rows) + 1)))
    ax = fig.add_subplot()
    labels = []
    for i, row in enumerate(rows):
        mean, lo, hi = (
            row.get("mean_diff"),
            row.get("mean_diff_ci_low"),
            row.get("mean_diff_ci_high"),
        )
        labels.append(f"{row['rater']} (n={row['n']})")
        if mean is None:
            continue
        if lo is not None and hi is not None:
            ax.hlines(i, lo, hi, color="#333333")
        ax.plot(mean, i, "s", color="#1f4e79")
    if overall is not None and overall.get("mean_diff") is not None:
        i = len(rows)
        labels.append(f"all raters (n={overall['n']})")
        lo, hi = overall.get("mean_diff_ci_low"), overall.get("mean_diff_ci_high")
        if lo is not None and hi is not None:
            ax.hlines(i, lo, hi, color="#b22222")
        ax.plot(overall["mean_diff"], i, "D", color="#b22222", markersize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"mean score difference ({difference}), 95% CI")
    return _render(fig, fmt)


def preference_bars(preference: Mapping[str, Any], *, fmt: Format = "png") -> bytes:
    """Counts preferring each arm or neither, with the binomial p-value in the title."""
    counts = preference["counts"]
    names = [preference["arm_a"], preference["arm_b"], "none"]
    values = [int(counts.get(n, 0)) for n in names]
    fig = Figure(figsize=(5.0, 3.0))
    ax = fig.add_subplot()
    bars = ax.bar(
        ["no preference" if n == "none" else n for n in names],
        values,
        color=["#4c72b0", "#dd8452", "#bbbbbb"],
    )
    ax.bar_label(bars)
    ax.set_ylabel("trials")
    ax.margins(y=0.12)  # room for the count labels
    p = preference.get("prefer_b", {}).get("p_value")
    if p is not None:
        ax.set_title(f"Preferred map (binomial {'p < 0.001' if p < 0.001 else f'p = {p:.3f}'})")
    else:
        ax.set_title("Preferred map")
    return _render(fig, fmt)


def agreement_table(agreement: Mapping[str, Any], *, fmt: Format = "png") -> bytes:
    """Krippendorff's alpha and ICCs per arm and overall, drawn as a table figure."""

    def fmt_num(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    def fmt_ci(ci: Sequence[Any]) -> str:
        return "–" if not ci or ci[0] is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"

    blocks = [*agreement["per_arm"].items(), ("all maps", agreement["overall"])]
    cells = [
        [
            name,
            str(b["n_raters"]),
            str(b["n_units"]),
            fmt_num(b["alpha_ordinal"]),
            fmt_num(b["icc"]["icc2_1"]),
            fmt_ci(b["icc"]["icc2_1_ci"]),
            fmt_num(b["icc"]["icc2_k"]),
            fmt_ci(b["icc"]["icc2_k_ci"]),
        ]
        for name, b in blocks
    ]
    header = ["arm", "raters", "maps", "α ordinal", "ICC(2,1)", "95% CI", "ICC(2,k)", "95% CI"]
    fig = Figure(figsize=(8.0, 0.3 + 0.3 * (len(cells) + 1)))
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(header))))  # long arm labels stay readable
    table.scale(1.0, 1.3)
    return _render(fig, fmt)
