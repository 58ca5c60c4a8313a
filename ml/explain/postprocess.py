"""Post-processing: raw attribution magnitudes → display maps in [0, 1].

Raw maps differ in scale between models by orders of magnitude, so each map is scaled on its
own (never across the batch: one arm must not influence another's rendering). The paper's
rule is ``clip_std``: clip to mean ± k·std (k = 3), then min-max scale. ``percentile`` clips
to the [p_low, p_high] percentiles instead (robust to single hot pixels). A constant map
carries no information and becomes all zeros, never NaN.
"""

from __future__ import annotations

from typing import Any

import torch

from ml.explain.choices import POSTPROCESS_MODES

__all__ = ["POSTPROCESS_MODES", "postprocess"]


def postprocess(maps: torch.Tensor, mode: str = "clip_std", **params: Any) -> torch.Tensor:
    """Scale each map of ``maps`` (N×H×W or H×W) to [0, 1] by ``mode``; float32 out.

    ``clip_std``: ``k`` (default 3.0). ``percentile``: ``low`` (default 1.0), ``high``
    (default 99.5), both in percent.
    """
    single = maps.ndim == 2
    x = maps[None] if single else maps
    if x.ndim != 3:
        raise ValueError(f"maps must be N×H×W or H×W, got shape {tuple(maps.shape)}")
    x = x.detach().to(torch.float32)
    flat = x.reshape(x.shape[0], -1)
    if mode == "clip_std":
        _only(params, {"k"}, mode)
        k = float(params.get("k", 3.0))
        mean = flat.mean(dim=1, keepdim=True)
        std = flat.std(dim=1, unbiased=False, keepdim=True)
        lo, hi = mean - k * std, mean + k * std
    elif mode == "percentile":
        _only(params, {"low", "high"}, mode)
        low, high = float(params.get("low", 1.0)), float(params.get("high", 99.5))
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
        q = torch.tensor([low / 100.0, high / 100.0], dtype=torch.float32, device=x.device)
        bounds = torch.quantile(flat, q, dim=1)  # 2×N
        lo, hi = bounds[0][:, None], bounds[1][:, None]
    else:
        raise ValueError(
            f"unknown post-processing mode {mode!r}; expected one of {POSTPROCESS_MODES}"
        )
    clipped = torch.minimum(torch.maximum(flat, lo), hi)
    cmin = clipped.min(dim=1, keepdim=True).values
    span = clipped.max(dim=1, keepdim=True).values - cmin
    out = torch.where(span > 0, (clipped - cmin) / span.clamp_min(1e-30), torch.zeros_like(clipped))
    out = out.reshape(x.shape)
    return out[0] if single else out


def _only(params: dict[str, Any], allowed: set[str], mode: str) -> None:
    extra = set(params) - allowed
    if extra:
        raise ValueError(
            f"unknown parameter(s) {sorted(extra)} for mode {mode!r}; valid: {sorted(allowed)}"
        )
