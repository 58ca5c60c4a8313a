"""Model-parameter randomisation sanity check (Adebayo et al., NeurIPS 2018).

A saliency method that explains the *model* must change when the model's learned weights
are destroyed. We compute maps from the trained model and from a copy whose parameters are
re-initialised, and report the Spearman rank correlation between the two per image. A high
correlation means the map reflects the image (edges, intensity) rather than what the model
learned — a warning for a reader study.

Modes: ``"full"`` re-initialises every layer at once (the end point of Adebayo's cascade);
``"cascading"`` re-initialises blocks from the output backwards and reports the correlation
after each block. The randomised copy explains the *same target classes* as the trained
model, so only the weights differ.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ml.explain.engine import compute_saliency

__all__ = ["model_blocks", "randomization_check", "randomize_model", "spearman_rows"]


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation (average ranks for ties) between matching rows of N×… tensors."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"need two N×… tensors of equal shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    ra = rankdata(a.detach().reshape(a.shape[0], -1).double().numpy(), axis=1)
    rb = rankdata(b.detach().reshape(b.shape[0], -1).double().numpy(), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (ra * rb).sum(axis=1) / denom, 0.0)
    return torch.from_numpy(rho).float()


def model_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level parameterised blocks, input to output (skipping thin wrappers)."""
    prefix, module = "", model
    while True:
        kids = [(n, m) for n, m in module.named_children() if any(True for _ in m.parameters())]
        if len(kids) != 1:
            break
        name, module = kids[0]
        prefix = f"{prefix}{name}."
    return [(f"{prefix}{n}", m) for n, m in kids]


def _reinit(module: nn.Module) -> None:
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset) and any(True for _ in m.parameters(recurse=False)):
            reset()


def randomize_model(
    model: nn.Module, *, seed: int = 0, blocks: Sequence[str] | None = None
) -> nn.Module:
    """A deep copy of ``model`` with the named blocks (default: all) re-initialised.

    Seeded and isolated from the caller's RNG; the original model is never touched.
    """
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if blocks is None:
            _reinit(clone)
        else:
            named = dict(clone.named_modules())
            for name in blocks:
                if name not in named:
                    raise ValueError(f"unknown block {name!r}")
                _reinit(named[name])
    return clone


def randomization_check(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str = "gradient",
    target: str = "predicted",
    labels: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    route: str | None = None,
    params: Mapping[str, Any] | None = None,
    mode: str = "full",
    seed: int = 0,
    max_batch: int | None = None,
) -> dict[str, Any]:
    """Spearman correlation between trained-model and randomised-model maps, per image.

    Returns ``{"method", "mode", "spearman": [per image], "mean_spearman"}``; in cascading
    mode also ``"stages": [{"block", "mean_spearman"}, ...]`` (output block first) and the
    top-level ``spearman`` is that of the fully randomised model.
    """
    if mode not in ("full", "cascading"):
        raise ValueError(f"mode must be 'full' or 'cascading', got {mode!r}")
    kw: dict[str, Any] = {
        "method": method,
        "route": route,
        "params": params,
        "max_batch": max_batch,
    }
    trained = compute_saliency(
        model, inputs, target=target, labels=labels, class_names=class_names, **kw
    )
    # Same classes for the randomised model: only the weights may differ.
    fixed = torch.zeros_like(trained.logits)
    for i, t in enumerate(trained.targets):
        fixed[i, t] = 1.0

    def corr(randomised: nn.Module) -> torch.Tensor:
        res = compute_saliency(randomised, inputs, target="ground_truth", labels=fixed, **kw)
        return spearman_rows(trained.maps, res.maps)

    out: dict[str, Any] = {"method": method, "mode": mode, "seed": seed}
    if mode == "full":
        rho = corr(randomize_model(model, seed=seed))
    else:
        names = [n for n, _ in model_blocks(model)]
        stages, done = [], []
        for name in reversed(names):
            done.append(name)
            rho = corr(randomize_model(model, seed=seed, blocks=done))
            stages.append({"block": name, "mean_spearman": float(rho.mean())})
        out["stages"] = stages
    out["spearman"] = [float(r) for r in rho]
    out["mean_spearman"] = float(rho.mean())
    return out
