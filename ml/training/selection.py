"""Model selection that cannot fail silently: warnings about the chosen epoch, and the table.

The trap this closes: validation accuracy sat at exactly the base rate for nine epochs (every
image predicted as one class) while validation AUROC swung from 0.86 to 0.17, and best.pt went
to the epoch with AUROC 0.168. Nothing warned. Now the trainer records, per epoch, how many
distinct predictions the validation set received, and :func:`selection_warnings` says loudly
when predictions collapsed, when the selected epoch ranks worse than chance, and when the
selected epoch is far from the best AUROC of the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ml.evaluation.dual_bn import not_separated

__all__ = [
    "FAR_FROM_BEST_AUROC",
    "format_history",
    "selection_warnings",
]

# A selected epoch whose validation AUROC is this far below the run's best gets a warning.
FAR_FROM_BEST_AUROC = 0.05


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return None if math.isnan(float(v)) else float(v)


def _ranges(epochs: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = None
    for e in [*epochs, None]:
        if start is not None and (e is None or e != prev + 1):  # type: ignore[operator]
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = None
        if e is not None and start is None:
            start = e
        prev = e
    return ", ".join(parts)


def selection_warnings(
    history: Sequence[dict[str, Any]], metric: str, selected_epoch: int | None
) -> list[str]:
    """Plain-language warnings about a run's validation curve and the epoch it selected."""
    out: list[str] = []
    collapsed = [int(h["epoch"]) for h in history if h.get("val_collapsed")]
    if collapsed:
        out.append(
            f"validation predictions collapsed to a single class in epoch(s) "
            f"{_ranges(collapsed)} of {len(history)}: accuracy there is the class share and "
            "AUROC comes from near-constant scores (check the learning rate, BN momentum, "
            "class balance)"
        )
    by_epoch = {int(h["epoch"]): h for h in history}
    chosen = by_epoch.get(selected_epoch) if selected_epoch is not None else None
    if chosen is None:
        if history:
            out.append(f"no epoch gave a finite validation {metric}; best.pt is the last epoch")
        return out
    if chosen.get("val_collapsed"):
        out.append(f"the selected epoch {selected_epoch} has collapsed validation predictions")
    aurocs = {e: _finite(h.get("val_auroc")) for e, h in by_epoch.items()}
    valid = {e: v for e, v in aurocs.items() if v is not None}
    sel = aurocs.get(int(selected_epoch or 0))
    if sel is not None and sel < 0.5:
        out.append(
            f"the selected epoch {selected_epoch} ranks worse than chance "
            f"(validation AUROC {sel:.3f} < 0.5)"
        )
    if "map_spearman" in chosen:
        apart = not_separated(chosen)
        if apart:
            out.append(f"at the selected epoch {selected_epoch}, {apart}")
    if valid and sel is not None:
        best_epoch = max(valid, key=lambda e: (valid[e], -e))
        if valid[best_epoch] - sel > FAR_FROM_BEST_AUROC:
            out.append(
                f"the selected epoch {selected_epoch} (by validation {metric}) has AUROC "
                f"{sel:.3f}, {valid[best_epoch] - sel:.3f} below the run's best "
                f"{valid[best_epoch]:.3f} at epoch {best_epoch}"
            )
    return out


_COLUMNS = (
    ("epoch", "epoch", "{:d}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_auroc", "val AUROC", "{:.3f}"),
    ("val_accuracy", "val acc", "{:.3f}"),
    ("val_predicted_classes", "pred classes", "{:d}"),
    ("bn_mean_shift", "BN shift", "{:.3f}"),
    ("map_spearman", "route map rho", "{:.3f}"),
)


def format_history(history: Sequence[dict[str, Any]], selected_epoch: int | None) -> str:
    """The per-epoch metrics as an aligned text table; ``*`` marks the selected epoch."""
    cols = [c for c in _COLUMNS if any(c[0] in h for h in history)]
    header = [name for _, name, _ in cols] + ["selected"]
    rows: list[list[str]] = []
    for h in history:
        cells = []
        for key, _, fmt in cols:
            v = h.get(key)
            if isinstance(v, bool) or v is None:
                cells.append("-")
            elif isinstance(v, float) and math.isnan(v):
                cells.append("nan")
            else:
                cells.append(fmt.format(int(v) if fmt == "{:d}" else float(v)))
        cells.append("*" if h.get("epoch") == selected_epoch else "")
        rows.append(cells)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
