"""Contact sheet: image | map of model A | map of model B ... per row, for slides and papers.

Uses the same overlay compositing as the study (:func:`ml.explain.render.overlay_array`), so
what a researcher shows on a slide is what the raters saw. Ground-truth masks are outlined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.explain.render import overlay_array

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SheetRow", "contact_sheet_figure", "make_contact_sheet"]


@dataclass
class SheetRow:
    """One case: the 8-bit display image, one [0, 1] map per column (display size), captions."""

    display: np.ndarray
    maps: Sequence[np.ndarray]
    title: str = ""
    captions: Sequence[str] = field(default_factory=list)
    mask: np.ndarray | None = None


def make_contact_sheet(
    rows: Sequence[SheetRow],
    columns: Sequence[str],
    out_path: str | Path,
    *,
    colormap: str = "jet",
    opacity: float = 0.5,
    cell_inches: float = 2.2,
    dpi: int = 150,
    suptitle: str | None = None,
) -> Path:
    """Write the sheet (PNG or PDF by suffix) and return its path."""
    fig = contact_sheet_figure(
        rows,
        columns,
        colormap=colormap,
        opacity=opacity,
        cell_inches=cell_inches,
        dpi=dpi,
        suptitle=suptitle,
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def contact_sheet_figure(
    rows: Sequence[SheetRow],
    columns: Sequence[str],
    *,
    colormap: str = "jet",
    opacity: float = 0.5,
    cell_inches: float = 2.2,
    dpi: int = 150,
    suptitle: str | None = None,
) -> Figure:
    """The sheet as a matplotlib Figure (Agg canvas attached), before it is saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    n_cols = 1 + len(columns)
    for r in rows:
        if len(r.maps) != len(columns):
            raise ValueError(f"each row needs {len(columns)} maps, got {len(r.maps)}")
    # Constrained layout reserves room for the suptitle above the column titles; tight_layout
    # ignored it and drew the title across the first row's headers.
    fig = Figure(
        figsize=(cell_inches * n_cols, cell_inches * len(rows) + 0.6),
        dpi=dpi,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for i, row in enumerate(rows):
        disp = row.display if row.display.ndim == 3 else np.repeat(row.display[..., None], 3, 2)
        panels = [disp[..., :3]] + [
            overlay_array(row.display, m, colormap=colormap, opacity=opacity) for m in row.maps
        ]
        for j, panel in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(panel, interpolation="nearest")
            if row.mask is not None and row.mask.any():
                ax.contour(row.mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("image" if j == 0 else columns[j - 1], fontsize=9)
            if j == 0 and row.title:
                ax.set_ylabel(row.title, fontsize=7)
            if j > 0 and j - 1 < len(row.captions):
                ax.set_xlabel(row.captions[j - 1], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
