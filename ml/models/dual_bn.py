"""Dual batch normalisation (Han et al. 2021): one BN for clean images, one for adversarial.

Every ``BatchNorm2d`` of a network is replaced by :class:`DualBatchNorm2d`, which holds two
``BatchNorm2d`` with their own affine parameters and running statistics in ``bns`` (index 0 =
clean, 1 = adversarial; the seed code's state-dict layout ``<layer>.bns.0.*``). Convolutions
and the classifier stay shared.

The route is a plain attribute on each layer, set for the whole model with :func:`bn_route`,
so the forward signature is unchanged: hook-based attribution (Captum), ``torch.compile`` and
DDP see an ordinary ``forward(x)``. A third, internal route ``"split"`` sends the first
``split_at`` samples of a batch through the clean BN and the rest through the adversarial BN;
dual-BN training uses it to run clean and adversarial halves in *one* forward/backward (the
statistics of each half are computed separately, so this is exactly two routed passes), which
is both faster and what DDP needs (one forward per backward).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = [
    "ROUTES",
    "DualBatchNorm2d",
    "bn_route",
    "convert_to_dual_bn",
    "is_dual_bn",
    "split_route",
]

ROUTES = ("clean", "adv")
_ROUTE_INDEX = {"clean": 0, "adv": 1}


class DualBatchNorm2d(nn.Module):
    """Two BatchNorm2d behind one module; ``route`` picks which one a forward uses.

    Only the BN that runs updates its running statistics, in train and in eval mode alike,
    because the other one is simply not called.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.bns = nn.ModuleList(
            nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats)
            for _ in range(2)
        )
        self.route = "clean"
        self.split_at: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.route == "split":
            k = self.split_at
            if k is None or not 0 <= k <= x.shape[0]:
                raise RuntimeError(f"split route needs 0 <= split_at <= batch, got {k}")
            parts = []
            if k > 0:
                parts.append(self.bns[0](x[:k]))
            if k < x.shape[0]:
                parts.append(self.bns[1](x[k:]))
            return torch.cat(parts, dim=0)
        return self.bns[_ROUTE_INDEX[self.route]](x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, route={self.route!r}"


def convert_to_dual_bn(module: nn.Module, momentum: float = 0.01) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` (recursively, in place) by a DualBatchNorm2d.

    Both branches start as copies of the original BN (parameters and running statistics), so
    converting a pretrained network keeps its clean behaviour on both routes.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, DualBatchNorm2d):
            dual = DualBatchNorm2d(
                child.num_features,
                child.eps,
                momentum,
                child.affine,
                child.track_running_stats,
            )
            for bn in dual.bns:
                assert isinstance(bn, nn.BatchNorm2d)
                bn.load_state_dict(child.state_dict())
                bn.momentum = momentum
            setattr(module, name, dual)
        else:
            convert_to_dual_bn(child, momentum)
    return module


def _dual_layers(model: nn.Module) -> list[DualBatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, DualBatchNorm2d)]


def is_dual_bn(model: nn.Module) -> bool:
    """True when the model (or the module a DDP/DataParallel wrapper holds) has dual BNs."""
    return any(isinstance(m, DualBatchNorm2d) for m in model.modules())


@contextmanager
def bn_route(model: nn.Module, route: str) -> Iterator[nn.Module]:
    """Route every dual BN of ``model`` through ``route`` ("clean" | "adv") inside the block.

    On a standard model "clean" is a no-op and "adv" raises ValueError: asking for the
    adversarial branch of a model that has none is a mistake the caller should hear about.
    The previous routes are restored on exit, also after an exception.
    """
    if route not in ROUTES:
        raise ValueError(f"unknown BN route {route!r}; expected one of {ROUTES}")
    layers = _dual_layers(model)
    if not layers:
        if route == "adv":
            raise ValueError("BN route 'adv' requested but the model has no dual batch norm")
        yield model
        return
    saved = [(m.route, m.split_at) for m in layers]
    try:
        for m in layers:
            m.route, m.split_at = route, None
        yield model
    finally:
        for m, (r, s) in zip(layers, saved, strict=True):
            m.route, m.split_at = r, s


@contextmanager
def split_route(model: nn.Module, n_clean: int) -> Iterator[nn.Module]:
    """First ``n_clean`` samples of each batch via the clean BN, the rest via the adversarial BN."""
    layers = _dual_layers(model)
    if not layers:
        raise ValueError("split BN route needs a dual-BN model")
    saved = [(m.route, m.split_at) for m in layers]
    try:
        for m in layers:
            m.route, m.split_at = "split", n_clean
        yield model
    finally:
        for m, (r, s) in zip(layers, saved, strict=True):
            m.route, m.split_at = r, s
