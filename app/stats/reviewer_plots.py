"""Figures of the reviewer-grade analyses: VGC curves and the power of the next study.

Like `app.stats.plots`, each function draws from the result dicts (never raw data), so a figure
shows exactly the numbers in the tables beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from app.stats.plots import Format, _render


def vgc_plot(vgc: Mapping[str, Any], *, fmt: Format = "png") -> bytes:
    """VGC curves: one thin line per rater, the pooled curve bold, the chance diagonal dashed."""
    fig = Figure(figsize=(4.8, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#9ca3af", linewidth=0.8)
    for row in vgc.get("per_rater", []):
        pts = row["curve"]
        ax.plot(
            [p["x"] for p in pts],
            [p["y"] for p in pts],
            color="#93c5fd",
            linewidth=0.9,
            marker="o",
            markersize=2,
        )
    pooled = vgc.get("curve") or []
    if pooled:
        auc, lo, hi = vgc.get("auc"), vgc.get("ci_low"), vgc.get("ci_high")
        label = f"pooled AUC_VGC {auc:.3f}" if auc is not None else "pooled"
        if lo is not None and hi is not None:
            label += f" [{lo:.3f}, {hi:.3f}]"
        ax.plot(
            [p["x"] for p in pooled],
            [p["y"] for p in pooled],
            color="#1d4ed8",
            linewidth=2.2,
            marker="o",
            markersize=4,
            label=label,
        )
        ax.legend(loc="lower right", frameon=False, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"share of {vgc.get('arm_ref', 'reference')} maps scored ≥ threshold")
    ax.set_ylabel(f"share of {vgc.get('arm_test', 'test')} maps scored ≥ threshold")
    ax.set_title(f"VGC: {vgc.get('arm_test')} vs {vgc.get('arm_ref')}", fontsize=10)
    return _render(fig, fmt)


def power_plot(power: Mapping[str, Any], *, fmt: Format = "png") -> bytes:
    """Power against the number of cases, one line per number of readers, 80% marked."""
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    grid = power.get("grid") or []
    for r in power.get("readers", []):
        cells = sorted((g for g in grid if g["readers"] == r), key=lambda g: g["cases"])
        if cells:
            ax.plot(
                [g["cases"] for g in cells],
                [g["power"] for g in cells],
                marker="o",
                label=f"{r} readers",
            )
    ax.axhline(0.8, color="#9ca3af", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    cases = power.get("cases") or []
    if cases:
        ax.set_xticks(cases, [str(c) for c in cases])
        ax.xaxis.set_minor_formatter(NullFormatter())  # no "3 x 10^1" labels between them
    ax.set_ylim(0, 1)
    ax.set_xlabel("cases")
    ax.set_ylabel("power")
    effect = power.get("effect")
    title = f"Power at alpha {power.get('alpha')}"
    if effect is not None:
        title += f", effect {effect:+.2f} points"
    ax.set_title(title, fontsize=10)
    if grid:
        ax.legend(frameon=False, fontsize=8)
    return _render(fig, fmt)
