"""PGD and FGSM (with random start) on [0,1] images.

Attacks run with the model in eval mode (BN uses running statistics and nothing is updated)
through a chosen BN route, and ask autograd for the input gradient only, so no weight
gradients are computed or accumulated. The model's train/eval mode and routes are restored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ml.attacks.losses import classification_loss
from ml.attacks.steps import STEPS
from ml.models import bn_route, is_dual_bn

__all__ = ["AttackConfig", "fgsm_attack", "pgd_attack", "run_attack"]


@dataclass(frozen=True)
class AttackConfig:
    """One attack: threat model (norm, eps), step size, number of steps, random start."""

    norm: str = "linf"
    eps: float = 0.005
    step_size: float = 0.0025
    steps: int = 10
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.norm not in STEPS:
            raise ValueError(f"unknown norm {self.norm!r}; choose from {sorted(STEPS)}")
        if self.eps < 0 or self.step_size < 0 or self.steps < 0:
            raise ValueError("eps, step_size and steps must be non-negative")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _default_route(model: nn.Module, route: str | None) -> str:
    if route is not None:
        return route
    return "adv" if is_dual_bn(model) else "clean"


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
    multilabel: bool = False,
    route: str | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the classification loss inside the ε-ball of ``norm``.

    ``route`` picks the BN branch the attack runs through (default: "adv" for dual-BN models,
    as in the paper's training; "clean" otherwise). Returns detached adversarial images.
    """
    if norm not in STEPS:
        raise ValueError(f"unknown norm {norm!r}; choose from {sorted(STEPS)}")
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    stepper = STEPS[norm](x, eps, step_size)
    was_training = model.training
    model.eval()
    try:
        with bn_route(model, _default_route(model, route)), torch.enable_grad():
            x_adv = stepper.random_perturb(x) if random_start else x.clone()
            for _ in range(steps):
                x_adv = x_adv.detach().requires_grad_(True)
                loss = classification_loss(model(x_adv), target, multilabel, reduction="sum")
                (grad,) = torch.autograd.grad(loss, [x_adv])
                with torch.no_grad():
                    x_adv = stepper.project(stepper.step(x_adv, grad))
    finally:
        model.train(was_training)
    return x_adv.detach()


def fgsm_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eps: float,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    multilabel: bool = False,
    route: str | None = None,
) -> torch.Tensor:
    """FGSM with random start ("fast is better than free", Wong et al. 2020): one step of
    ``step_size`` (default 1.25·ε) from a random point of the ball, then projection."""
    return pgd_attack(
        model,
        x,
        target,
        eps=eps,
        step_size=1.25 * eps if step_size is None else step_size,
        steps=1,
        norm=norm,
        random_start=random_start,
        multilabel=multilabel,
        route=route,
    )


def run_attack(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    config: AttackConfig,
    *,
    multilabel: bool = False,
    route: str | None = None,
) -> torch.Tensor:
    """:func:`pgd_attack` with the settings of an :class:`AttackConfig`."""
    return pgd_attack(
        model,
        x,
        target,
        eps=config.eps,
        step_size=config.step_size,
        steps=config.steps,
        norm=config.norm,
        random_start=config.random_start,
        multilabel=multilabel,
        route=route,
    )
