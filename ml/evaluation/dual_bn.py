"""Did dual BN work? Divergence of the clean and adversarial BN branches of one model.

A dual-BN model is only a different model on its adversarial route if the two branches have
separated. After a short run (84 steps at momentum 0.01) they can be practically identical:
same maps, same AUROC, and a comparison "clean route vs adversarial route" then compares a
model with itself. Two views of the gap, both cheap enough to log every epoch:

* **BN statistics**: per layer, the standardised shift of the running means
  (|μ₀−μ₁| / √((σ₀²+σ₁²)/2), averaged over channels), the mean |log σ₁²/σ₀²| of the running
  variances, and the relative difference of the affine parameters ‖θ₁−θ₀‖/‖θ₀‖; each averaged
  over layers;
* **behaviour on real images**: the mean Spearman correlation between the two routes' gradient
  maps (|∂ logit/∂x| for the class the clean route predicts), ``map_distance`` = 1 − that, the
  fraction of images whose predicted class differs, and the mean absolute probability gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ml.models import DualBatchNorm2d, bn_route, unwrap

__all__ = [
    "SEPARATION_SPEARMAN",
    "bn_statistics_distance",
    "dual_bn_diagnostics",
    "not_separated",
]

# Maps whose rank correlation between routes is at least this are "practically identical".
SEPARATION_SPEARMAN = 0.95
# Routes whose class probabilities differ by less than this on average (and that predict the
# same class for at least 99 % of images) behave as one model.
SEPARATION_PROB_GAP = 0.02


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def bn_statistics_distance(model: nn.Module) -> dict[str, float]:
    """Distances between the two BN branches' statistics and affine parameters."""
    shift: list[float] = []
    log_var: list[float] = []
    affine: list[float] = []
    layers = [m for m in unwrap(model).modules() if isinstance(m, DualBatchNorm2d)]
    for layer in layers:
        b0, b1 = layer.bns[0], layer.bns[1]
        assert isinstance(b0, nn.BatchNorm2d) and isinstance(b1, nn.BatchNorm2d)
        if b0.running_mean is not None and b1.running_mean is not None:
            assert b0.running_var is not None and b1.running_var is not None
            v0, v1 = b0.running_var.float(), b1.running_var.float()
            pooled = torch.sqrt((v0 + v1) / 2 + b0.eps)
            delta = (b0.running_mean.float() - b1.running_mean.float()).abs()
            shift.append(float((delta / pooled).mean()))
            log_var.append(float((torch.log(v1 + b0.eps) - torch.log(v0 + b0.eps)).abs().mean()))
        if b0.affine:
            p0 = torch.cat([b0.weight.detach().float(), b0.bias.detach().float()])
            p1 = torch.cat([b1.weight.detach().float(), b1.bias.detach().float()])
            affine.append(float((p1 - p0).norm() / p0.norm().clamp_min(1e-12)))
    return {
        "bn_layers": float(len(layers)),
        "bn_mean_shift": _mean(shift),
        "bn_log_var_ratio": _mean(log_var),
        "bn_affine_rel_diff": _mean(affine),
    }


def _gradient_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    inp = x.detach().clone().requires_grad_(True)
    logits = model(inp)
    chosen = logits.gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(chosen, inp)
    return grad.abs().amax(dim=1).flatten(1).cpu().numpy()


def dual_bn_diagnostics(model: nn.Module, x: torch.Tensor, multilabel: bool) -> dict[str, float]:
    """BN statistics distance plus the routes' map and prediction divergence on images ``x``.

    Runs in eval mode (running statistics, as a study would use the model) and restores the
    model's train/eval state afterwards; only the input gradient is computed.
    """
    net = unwrap(model)
    out = bn_statistics_distance(net)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            clean = net(x)
            with bn_route(net, "adv"):
                adv = net(x)
        squash = torch.sigmoid if multilabel else (lambda t: torch.softmax(t, dim=1))
        p_clean, p_adv = squash(clean.float()), squash(adv.float())
        target = p_clean.argmax(1)
        with torch.enable_grad():
            maps_clean = _gradient_maps(net, x, target)
            with bn_route(net, "adv"):
                maps_adv = _gradient_maps(net, x, target)
    finally:
        net.train(was_training)
    rhos = []
    for a, b in zip(maps_clean, maps_adv, strict=True):
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            rhos.append(float(spearmanr(a, b).statistic))
    rho = _mean(rhos)
    out.update(
        map_spearman=rho,
        map_distance=1.0 - rho if not math.isnan(rho) else math.nan,
        prediction_disagreement=float((p_adv.argmax(1) != target).float().mean()),
        prob_gap=float((p_clean - p_adv).abs().mean()),
        n_images=float(x.shape[0]),
    )
    return out


def _number(diag: Mapping[str, Any], key: str) -> float | None:
    v = diag.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


def not_separated(diag: Mapping[str, Any]) -> str | None:
    """A warning when the two routes behave as one model, else None.

    Either the routes' maps are practically identical (Spearman >= 0.95), or their
    predictions are: the same class for >= 99 % of images and a mean probability gap below
    0.02. Gradient maps are noisy enough that their rank correlation stays well below 1 even
    for near-identical branches, so the predictions are the sharper test.
    """
    rho = _number(diag, "map_spearman")
    gap = _number(diag, "prob_gap")
    disagree = _number(diag, "prediction_disagreement")
    same_maps = rho is not None and rho >= SEPARATION_SPEARMAN
    same_predictions = (
        gap is not None and disagree is not None and gap < SEPARATION_PROB_GAP and disagree <= 0.01
    )
    if not (same_maps or same_predictions):
        return None
    shift = _number(diag, "bn_mean_shift")
    return (
        "the two BN branches have not separated: predictions differ on "
        f"{100 * (disagree or 0.0):.0f}% of images (mean probability gap "
        f"{gap if gap is not None else math.nan:.3f}), route maps correlate at Spearman "
        f"{rho if rho is not None else math.nan:.3f}, BN mean shift "
        f"{shift if shift is not None else math.nan:.3f}; the adversarial route is practically "
        "the clean model (train longer, or check --bn-momentum)"
    )
