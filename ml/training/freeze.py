"""Freeze early stages ("robust first layers", Margeloiu et al. 2020).

Frozen stages keep their weights *and* their BN statistics: their modules stay in eval mode
even while the rest of the network trains, otherwise running means would drift and the
"fixed" robust features would change after all.
"""

from __future__ import annotations

from torch import nn

from ml.models import unwrap
from ml.training.config import STAGES

__all__ = ["freeze_through", "keep_frozen_in_eval"]


def _stage_modules(model: nn.Module, stage: str) -> list[nn.Module]:
    backbone = getattr(unwrap(model), "backbone", None)
    if backbone is None or not hasattr(backbone, "layer1"):
        raise ValueError("--freeze-through needs a ResNet-style model (conv1/bn1/layer1..layer4)")
    names = STAGES[: STAGES.index(stage) + 1]
    mods: list[nn.Module] = []
    for name in names:
        if name == "stem":
            mods += [backbone.conv1, backbone.bn1]
        else:
            mods.append(getattr(backbone, name))
    return mods


def freeze_through(model: nn.Module, stage: str) -> list[nn.Module]:
    """Stop gradients for the stem up to ``stage`` (inclusive); return the frozen modules."""
    mods = _stage_modules(model, stage)
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(False)
        m.eval()
    return mods


def keep_frozen_in_eval(frozen: list[nn.Module]) -> None:
    """Call after ``model.train()``: puts frozen stages back into eval mode."""
    for m in frozen:
        m.eval()
