"""Map-quality metrics, batched over maps (N×H×W tensors).

These quantify what raters judge by eye, so a study can report them next to the ratings:

* ``gini`` — sparseness (Hurley & Rickard 2009): 0 for a uniform map, 1 − 1/n for a single
  hot pixel. Higher = more concentrated.
* ``entropy`` — Shannon entropy of the map as a distribution over pixels, divided by
  log(n): 1 for a uniform map, 0 for a single pixel. Unit-free (the base cancels).
* ``total_variation`` — mean absolute difference between 4-neighbours; scale-dependent, so
  pass post-processed maps in [0, 1]. Lower = smoother, more coherent.
* ``mask_energy`` — fraction of map mass inside a ground-truth mask (a localisation score).
* ``pointing_game`` — 1.0 when the map's maximum falls inside the mask.
* ``deletion_auc`` / ``insertion_auc`` — faithfulness (Petsiuk et al. 2018): remove (insert)
  pixels from most to least salient and integrate the model's target probability; a faithful
  map gives a *low* deletion and a *high* insertion AUC.

Negative values are treated by magnitude (maps are attribution magnitudes). An all-zero map
counts as uniform (Gini 0, entropy 1) and has no mass inside any mask (energy 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

__all__ = [
    "deletion_auc",
    "entropy",
    "gini",
    "insertion_auc",
    "map_metrics",
    "mask_energy",
    "pointing_game",
    "total_variation",
]


def _flat(maps: torch.Tensor) -> torch.Tensor:
    if maps.ndim != 3:
        raise ValueError(f"maps must be N×H×W, got shape {tuple(maps.shape)}")
    return maps.detach().to(torch.float64).reshape(maps.shape[0], -1).abs()


def gini(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of each map's magnitudes (0 = uniform, → 1 = one pixel)."""
    x = _flat(maps).sort(dim=1).values
    n = x.shape[1]
    total = x.sum(dim=1)
    k = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    weights = (n - k + 0.5) / n
    g = 1.0 - 2.0 * (x * weights).sum(dim=1) / total.clamp_min(1e-300)
    return torch.where(total > 0, g, torch.zeros_like(g)).float()


def entropy(maps: torch.Tensor) -> torch.Tensor:
    """Normalised Shannon entropy H(p)/log(n) of p = |map| / sum|map| (1 = uniform)."""
    x = _flat(maps)
    n = x.shape[1]
    total = x.sum(dim=1, keepdim=True)
    p = x / total.clamp_min(1e-300)
    h = -(torch.xlogy(p, p)).sum(dim=1) / math.log(n) if n > 1 else torch.zeros(x.shape[0])
    return torch.where(total[:, 0] > 0, h, torch.ones_like(h)).float()


def total_variation(maps: torch.Tensor) -> torch.Tensor:
    """Mean |difference| over horizontal and vertical neighbour pairs of each map."""
    if maps.ndim != 3:
        raise ValueError(f"maps must be N×H×W, got shape {tuple(maps.shape)}")
    x = maps.detach().to(torch.float64)
    dx = (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).sum(dim=1)
    dy = (x[:, 1:, :] - x[:, :-1, :]).abs().flatten(1).sum(dim=1)
    h, w = x.shape[1:]
    pairs = h * (w - 1) + (h - 1) * w
    return ((dx + dy) / max(pairs, 1)).float()


def _masks(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    m = masks[None] if masks.ndim == 2 else masks
    if m.shape != maps.shape:
        raise ValueError(
            f"masks {tuple(masks.shape)} must match maps {tuple(maps.shape)}; "
            "resize them to the model input first"
        )
    return (m.detach().to(torch.float64) > 0.5).reshape(m.shape[0], -1)


def mask_energy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fraction of each map's mass inside its mask (NaN where the mask is empty)."""
    x = _flat(maps)
    m = _masks(maps, masks)
    total = x.sum(dim=1)
    inside = (x * m).sum(dim=1)
    e = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    return torch.where(m.any(dim=1), e, torch.full_like(e, float("nan"))).float()


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1.0 where the map's maximum lies inside the mask, else 0.0 (NaN for an empty mask).

    Ties for the maximum count as a hit only if *all* tied pixels are inside: a flat map
    must not score by accident.
    """
    x = _flat(maps)
    m = _masks(maps, masks)
    is_max = x == x.max(dim=1, keepdim=True).values
    hit = (is_max & ~m).sum(dim=1) == 0
    out = hit.to(torch.float32)
    return torch.where(m.any(dim=1), out, torch.full_like(out, float("nan")))


def map_metrics(
    maps: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    raw_maps: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Per-map JSON-serialisable metrics: gini, entropy, tv, mask_energy, mask_area, pointing.

    ``maps`` should be the post-processed maps (what raters see). Clipping creates ties at the
    maximum, so the pointing game uses ``raw_maps`` when given. ``mask_area`` (fraction of the
    image inside the mask) is the chance level of ``mask_energy``. Mask fields are None
    without a (non-empty) mask.
    """
    g, h, tv = gini(maps), entropy(maps), total_variation(maps)
    if masks is not None:
        me = mask_energy(maps, masks)
        pg = pointing_game(raw_maps if raw_maps is not None else maps, masks)
        area = _masks(maps, masks).float().mean(dim=1)
    rows = []
    for i in range(maps.shape[0]):
        row: dict[str, Any] = {
            "gini": float(g[i]),
            "entropy": float(h[i]),
            "tv": float(tv[i]),
            "mask_energy": None,
            "mask_area": None,
            "pointing": None,
        }
        if masks is not None and not math.isnan(me[i]):
            row["mask_energy"] = float(me[i])
            row["mask_area"] = float(area[i])
            row["pointing"] = float(pg[i])
        rows.append(row)
    return rows


# ---------------------------------------------------------------- faithfulness (model-based)


def _target_matrix(targets: Any, n: int, k: int) -> torch.Tensor:
    """N×K 0/1 from class indices (N), lists of indices per case, or an N×K matrix."""
    if isinstance(targets, torch.Tensor) and targets.ndim == 2:
        if targets.shape != (n, k):
            raise ValueError(f"targets must be N×K = {n}×{k}, got {tuple(targets.shape)}")
        return (targets > 0.5).float()
    rows = targets.tolist() if isinstance(targets, torch.Tensor) else list(targets)
    if len(rows) != n:
        raise ValueError(f"got {len(rows)} targets for {n} inputs")
    out = torch.zeros(n, k)
    for i, t in enumerate(rows):
        idx = [int(t)] if isinstance(t, int | float) else [int(j) for j in t]
        if not idx or min(idx) < 0 or max(idx) >= k:
            raise ValueError(f"target {t!r} of case {i} is not a class index in [0, {k})")
        out[i, idx] = 1.0
    return out


def _baseline(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(1.0, x.shape[-1] / 16.0)
        k = 2 * math.ceil(2 * sigma) + 1
        return gaussian_blur(x, [k, k], [sigma, sigma])
    raise ValueError(f"unknown baseline {kind!r}; expected 'zero', 'mean' or 'blur'")


def _perturbation_curve(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: Any,
    *,
    insert: bool,
    steps: int,
    baseline: str,
    route: str | None,
    multilabel: bool,
    max_batch: int,
) -> torch.Tensor:
    if inputs.ndim != 4 or maps.ndim != 3 or maps.shape[0] != inputs.shape[0]:
        raise ValueError("inputs must be N×C×H×W and maps N×H×W with the same N")
    if maps.shape[1:] != inputs.shape[2:]:
        raise ValueError(
            f"maps {tuple(maps.shape[1:])} must match input size {tuple(inputs.shape[2:])}"
        )
    if steps < 1:
        raise ValueError("steps must be >= 1")
    n, _, h, w = inputs.shape
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ctx: Any = nullcontext()
    if route is not None:
        from ml.models.dual_bn import bn_route

        ctx = bn_route(model, route)
    counts = torch.round(torch.linspace(0, h * w, steps + 1)).long().to(dev)
    scores = []
    try:
        with ctx, torch.no_grad():
            per = max(1, max_batch // (steps + 1))
            k_classes: int | None = None
            for lo in range(0, n, per):
                x = inputs[lo : lo + per].to(dev, torch.float32)
                b = x.shape[0]
                order = torch.argsort(
                    -maps[lo : lo + per].to(dev).abs().reshape(b, -1), dim=1, stable=True
                )
                rank = torch.empty_like(order)
                rank.scatter_(1, order, torch.arange(h * w, device=dev).expand(b, -1))
                # (b, steps+1, H*W): True = pixel already removed (deletion) / inserted (insertion)
                chosen = (rank[:, None, :] < counts[None, :, None]).reshape(
                    b * (steps + 1), 1, h, w
                )
                xs = x.repeat_interleave(steps + 1, dim=0)
                base = _baseline(x, baseline).repeat_interleave(steps + 1, dim=0)
                xk = torch.where(chosen, xs, base) if insert else torch.where(chosen, base, xs)
                logits = model(xk)
                k_classes = logits.shape[1]
                probs = torch.sigmoid(logits) if multilabel else logits.softmax(dim=1)
                tmat = _target_matrix(targets[lo : lo + per], b, k_classes).to(dev)
                tm = tmat.repeat_interleave(steps + 1, dim=0)
                s = (probs * tm).sum(dim=1) / tm.sum(dim=1)
                scores.append(s.reshape(b, steps + 1).cpu())
    finally:
        model.train(was_training)
    curve = torch.cat(scores)
    return ((curve[:, :-1] + curve[:, 1:]) / 2).sum(dim=1) / steps


def deletion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
    *,
    steps: int = 16,
    baseline: str = "zero",
    route: str | None = None,
    multilabel: bool = False,
    max_batch: int = 64,
) -> torch.Tensor:
    """Area under the target-probability curve as pixels are deleted, most salient first.

    Lower is more faithful. The probability of a case with several targets is their mean.
    Batched: all ``steps + 1`` perturbed copies of a chunk go through one forward.
    """
    return _perturbation_curve(
        model,
        inputs,
        maps,
        targets,
        insert=False,
        steps=steps,
        baseline=baseline,
        route=route,
        multilabel=multilabel,
        max_batch=max_batch,
    )


def insertion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
    *,
    steps: int = 16,
    baseline: str = "blur",
    route: str | None = None,
    multilabel: bool = False,
    max_batch: int = 64,
) -> torch.Tensor:
    """Area under the target-probability curve as pixels are inserted into a blurred image.

    Higher is more faithful (Petsiuk et al. start from a blurred copy, not black).
    """
    return _perturbation_curve(
        model,
        inputs,
        maps,
        targets,
        insert=True,
        steps=steps,
        baseline=baseline,
        route=route,
        multilabel=multilabel,
        max_batch=max_batch,
    )
