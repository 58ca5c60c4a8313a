"""Target policy: which logit(s) a saliency map explains.

A map answers "why this output?", so the output must be named and recorded with the map.
Three policies exist (the study's ``target`` setting):

* ``"predicted"`` — the top logit of the model itself (each arm explains its own decision);
* ``"ground_truth"`` — the *sum* of the logits of the positive classes in ``labels`` (the
  paper's choice for multi-label X-rays); a case without positives falls back to the
  predicted class, and that fallback is recorded;
* ``"class:<name>"`` — one named class for every case (same question asked of every arm).

Targets are expressed as a 0/1 weight matrix (N×K) over the logits plus a per-case flag
"use the argmax"; the attribution head (:mod:`ml.explain.engine`) turns that into one scalar
per case, so every Captum method sees the same objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["TargetSpec", "labels_to_matrix", "parse_target", "resolve_targets"]

_POLICIES = ("predicted", "ground_truth", "class")


@dataclass(frozen=True)
class TargetSpec:
    """The parsed target policy: ``kind`` in {"predicted", "ground_truth", "class"}."""

    kind: str
    class_index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.class_index is None else f"class:{self.class_index}"


def parse_target(target: str, class_names: Sequence[str] | None, num_classes: int) -> TargetSpec:
    """Validate a target string early so a bad study setting fails before any compute."""
    if target in ("predicted", "ground_truth"):
        return TargetSpec(target)
    if target.startswith("class:"):
        name = target[len("class:") :]
        names = list(class_names) if class_names is not None else None
        if names is None:
            # Allow a bare index when the model carries no class names.
            if name.isdigit() and int(name) < num_classes:
                return TargetSpec("class", int(name))
            raise ValueError(f"target {target!r} needs class_names (or an index < {num_classes})")
        if name not in names:
            raise ValueError(f"unknown class name {name!r} in target; valid names: {names}")
        return TargetSpec("class", names.index(name))
    raise ValueError(
        f"unknown target {target!r}; expected 'predicted', 'ground_truth' or 'class:<name>'"
    )


def resolve_targets(
    spec: TargetSpec,
    n: int,
    num_classes: int,
    labels: torch.Tensor | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(weights N×K float, use_pred N bool)`` for the attribution head.

    ``use_pred`` rows take the argmax of the logits at attribution time (cheap: no separate
    forward pass for single-pass methods).
    """
    weights = torch.zeros(n, num_classes, device=device)
    use_pred = torch.zeros(n, dtype=torch.bool, device=device)
    if spec.kind == "predicted":
        use_pred[:] = True
    elif spec.kind == "class":
        assert spec.class_index is not None
        weights[:, spec.class_index] = 1.0
    else:
        if labels is None:
            raise ValueError("target 'ground_truth' needs labels (N×K 0/1 or N class indices)")
        lab = labels_to_matrix(labels, n, num_classes).to(device)
        weights = lab
        use_pred = lab.sum(dim=1) == 0
    return weights, use_pred


def labels_to_matrix(labels: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """Accept N×K multi-hot or N class indices; return N×K float 0/1."""
    if labels.ndim == 1:
        if labels.shape[0] != n:
            raise ValueError(f"labels has {labels.shape[0]} rows for {n} inputs")
        idx = labels.long()
        if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
            raise ValueError(f"class index labels must lie in [0, {num_classes})")
        return torch.nn.functional.one_hot(idx, num_classes).float()
    if labels.ndim != 2 or labels.shape != (n, num_classes):
        raise ValueError(
            f"labels must be N×K = {n}×{num_classes} (0/1) or N indices, got {tuple(labels.shape)}"
        )
    return (labels > 0.5).float()
