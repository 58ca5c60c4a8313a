"""Attack steps for one threat model each: projection, gradient step, random start.

Kept apart from the PGD loop, as in MadryLab's ``robustness`` library, so a new threat model is
one small class and the loop never branches on the norm. Every step keeps images in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

__all__ = ["STEPS", "AttackStep", "L2Step", "LinfStep"]

_TINY = 1e-12


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample, shaped N×1×…×1 for broadcasting."""
    return t.flatten(1).norm(p=2, dim=1).clamp_min(_TINY).view(-1, *([1] * (t.ndim - 1)))


class AttackStep(ABC):
    """Threat model around ``orig``: the ε-ball of its norm intersected with [0,1]."""

    def __init__(self, orig: torch.Tensor, eps: float, step_size: float) -> None:
        self.orig = orig.detach()
        self.eps = float(eps)
        self.step_size = float(step_size)

    @abstractmethod
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest point (in this norm) of the ε-ball around ``orig``, clamped to [0,1]."""

    @abstractmethod
    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent step of length ``step_size`` in this norm."""

    @abstractmethod
    def random_perturb(self, x: torch.Tensor) -> torch.Tensor:
        """A random point of the ε-ball around ``x`` (the random start)."""


class LinfStep(AttackStep):
    """L∞ ball: sign-gradient steps, element-wise clipping."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        delta = torch.clamp(x - self.orig, -self.eps, self.eps)
        return torch.clamp(self.orig + delta, 0.0, 1.0)

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * torch.sign(grad)

    def random_perturb(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + torch.empty_like(x).uniform_(-self.eps, self.eps), 0.0, 1.0)


class L2Step(AttackStep):
    """L2 ball: steps along the *normalised* gradient (not its sign), radial projection."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        delta = x - self.orig
        factor = torch.clamp(self.eps / _per_sample_norm(delta), max=1.0)
        return torch.clamp(self.orig + delta * factor, 0.0, 1.0)

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return x + self.step_size * grad / _per_sample_norm(grad)

    def random_perturb(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform in the L2 ball: Gaussian direction, radius ε·U^(1/d)."""
        direction = torch.randn_like(x)
        direction = direction / _per_sample_norm(direction)
        d = x[0].numel()
        radius = self.eps * torch.rand(x.shape[0], device=x.device, dtype=x.dtype) ** (1.0 / d)
        delta = direction * radius.view(-1, *([1] * (x.ndim - 1)))
        return torch.clamp(x + delta, 0.0, 1.0)


STEPS: dict[str, type[AttackStep]] = {"linf": LinfStep, "l2": L2Step}
