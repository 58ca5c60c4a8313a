"""Classification losses shared by training and attacks.

Multi-label targets are floats where -1 marks "ignore" (CheXpert uncertain labels under the
``ignore`` policy); those entries contribute nothing to the loss or its gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["classification_loss"]


def classification_loss(
    logits: torch.Tensor, target: torch.Tensor, multilabel: bool, reduction: str = "mean"
) -> torch.Tensor:
    """BCE-with-logits (multi-label, -1 masked) or cross-entropy (multi-class).

    ``reduction``: "mean" (training), "sum" (attacks: per-sample gradients not divided by the
    batch size) or "none" (per-sample losses, N).
    """
    logits = logits.float()
    if multilabel:
        valid = target >= 0
        per = (
            F.binary_cross_entropy_with_logits(
                logits, target.clamp(min=0).to(logits.dtype), reduction="none"
            )
            * valid
        )
        per_sample = per.sum(1) / valid.sum(1).clamp_min(1)
        if reduction == "none":
            return per_sample
        if reduction == "sum":
            return per.sum()
        return per.sum() / valid.sum().clamp_min(1)
    return F.cross_entropy(logits, target.long(), reduction=reduction)
