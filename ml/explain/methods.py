"""The attribution methods, each a thin call into Captum on a *target head*.

Nothing here re-implements an attribution rule: Captum computes the attributions and this
module only (1) reduces every model to one scalar per case through :class:`TargetHead`, so
all methods explain the same objective, and (2) turns Captum's N×C×H×W output into one
N×H×W map by the same rule for every arm (absolute value, max over channels — the paper's
vanilla-gradient convention; Grad-CAM is ReLU'd and upsampled instead).

Memory is bounded by ``budget``: the largest number of images one forward/backward may see.
Methods that expand the batch internally (SmoothGrad samples, IG steps, occlusion windows)
get their internal batch sizes from it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from ml.explain.choices import METHODS

__all__ = ["DEFAULT_PARAMS", "METHODS", "SINGLE_PASS", "TargetHead", "attribute", "method_params"]


# Methods whose single forward pass can also pick the predicted class (no extra forward).
SINGLE_PASS = frozenset({"gradient", "gradcam", "guided_backprop"})

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "gradient": {},
    # Smilkov et al.: noise sigma = 10–20 % of the input range; inputs are in [0, 1].
    "smoothgrad": {"samples": 16, "noise": 0.15, "seed": 0},
    "integrated_gradients": {"steps": 32, "baseline": 0.0},
    "gradcam": {},
    "guided_backprop": {},
    # Window and stride in pixels of the model input.
    "occlusion": {"window": 16, "stride": 8, "baseline": 0.0},
}


def method_params(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with ``params``; unknown keys are an error (a typo must not be silent)."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; expected one of {METHODS}")
    merged = dict(DEFAULT_PARAMS[method])
    # Grad-CAM also takes ``layer`` (an nn.Module) to override the last-stage default.
    extra = set(params or {}) - set(merged) - ({"layer"} if method == "gradcam" else set())
    if extra:
        raise ValueError(
            f"unknown parameter(s) {sorted(extra)} for method {method!r}; valid: {sorted(merged)}"
        )
    merged.update(params or {})
    return merged


class TargetHead(nn.Module):
    """Wrap a classifier so it returns one scalar per case: the weighted sum of its target logits.

    ``weights`` (N×K) selects the logits; rows flagged in ``use_pred`` take the argmax of
    the logits instead (detached, so the gradient is exactly that of the top logit). The last
    logits seen are kept in ``last_logits`` so single-pass methods need no extra forward.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.last_logits: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor, use_pred: torch.Tensor
    ) -> torch.Tensor:
        logits = self.model(x)
        if logits.ndim != 2:
            raise ValueError(f"model must return N×K logits, got shape {tuple(logits.shape)}")
        w = weights.to(logits.dtype)
        if bool(use_pred.any()):
            top = nn.functional.one_hot(logits.detach().argmax(dim=1), logits.shape[1])
            w = torch.where(use_pred[:, None], top.to(logits.dtype), w)
        self.last_logits = logits.detach()
        self.last_weights = w.detach()
        return (logits * w).sum(dim=1, keepdim=True)


def _reduce_channels(attr: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×H×W: absolute value, max over channels (same rule for every arm)."""
    return attr.abs().amax(dim=1)


def _gradient(head: TargetHead, x: torch.Tensor, args: tuple[Any, ...], **_: Any) -> torch.Tensor:
    attr = Saliency(head).attribute(x, target=0, abs=True, additional_forward_args=args)
    return _reduce_channels(attr)


def _smoothgrad(
    head: TargetHead,
    x: torch.Tensor,
    args: tuple[Any, ...],
    *,
    budget: int,
    samples: int,
    noise: float,
    seed: int,
    **_: Any,
) -> torch.Tensor:
    per_pass = max(1, budget // x.shape[0])
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    # Seeded and isolated: the same study seed gives the same noise, and the caller's RNG
    # stream is left alone.
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        # Inputs live in [0, 1] by contract, so "fraction of the input range" is ``noise``.
        attr = NoiseTunnel(Saliency(head)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=int(samples),
            nt_samples_batch_size=min(per_pass, int(samples)),
            stdevs=float(noise),
            target=0,
            abs=True,
            additional_forward_args=args,
        )
    return _reduce_channels(attr)


def _integrated_gradients(
    head: TargetHead,
    x: torch.Tensor,
    args: tuple[Any, ...],
    *,
    budget: int,
    steps: int,
    baseline: float,
    **_: Any,
) -> torch.Tensor:
    attr = IntegratedGradients(head).attribute(
        x,
        baselines=float(baseline),
        target=0,
        n_steps=int(steps),
        internal_batch_size=max(budget, x.shape[0]),
        additional_forward_args=args,
    )
    return _reduce_channels(attr)


def _gradcam(
    head: TargetHead, x: torch.Tensor, args: tuple[Any, ...], *, layer: nn.Module, **_: Any
) -> torch.Tensor:
    cam = LayerGradCam(head, layer).attribute(
        x, target=0, additional_forward_args=args, relu_attributions=True
    )
    up = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return up[:, 0].clamp_min(0)


def _guided_backprop(
    head: TargetHead, x: torch.Tensor, args: tuple[Any, ...], **_: Any
) -> torch.Tensor:
    with warnings.catch_warnings():
        # Captum announces its (temporary) ReLU hooks on every call; they are removed after.
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        attr = GuidedBackprop(head).attribute(x, target=0, additional_forward_args=args)
    return _reduce_channels(attr)


def _occlusion(
    head: TargetHead,
    x: torch.Tensor,
    args: tuple[Any, ...],
    *,
    budget: int,
    window: int,
    stride: int,
    baseline: float,
    **_: Any,
) -> torch.Tensor:
    c = x.shape[1]
    attr = Occlusion(head).attribute(
        x,
        sliding_window_shapes=(c, int(window), int(window)),
        strides=(c, int(stride), int(stride)),
        baselines=float(baseline),
        target=0,
        perturbations_per_eval=max(1, budget // x.shape[0]),
        additional_forward_args=args,
    )
    # The window spans all channels, so channels agree; keep the evidence *for* the target
    # (score drop when occluded), as the other methods show magnitudes only.
    return attr.mean(dim=1).clamp_min(0)


_IMPL: dict[str, Callable[..., torch.Tensor]] = {
    "gradient": _gradient,
    "smoothgrad": _smoothgrad,
    "integrated_gradients": _integrated_gradients,
    "gradcam": _gradcam,
    "guided_backprop": _guided_backprop,
    "occlusion": _occlusion,
}


def attribute(
    method: str,
    head: TargetHead,
    x: torch.Tensor,
    weights: torch.Tensor,
    use_pred: torch.Tensor,
    *,
    budget: int,
    params: Mapping[str, Any],
) -> torch.Tensor:
    """One chunk of maps (N×H×W, on ``x.device``) for ``method`` with merged ``params``."""
    return _IMPL[method](head, x, (weights, use_pred), budget=budget, **params)
