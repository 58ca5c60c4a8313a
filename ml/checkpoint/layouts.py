"""Recognise a loaded state dict's layout and bring it into radsal's key space.

Two foreign layouts are understood (the Medical-Robust-Training seed code):

* ``seed-dual-bn``: a torchvision ResNet whose BNs are ``<layer>.bns.0.*`` (clean) and
  ``<layer>.bns.1.*`` (adversarial) — exactly :class:`~ml.models.DualBatchNorm2d`'s layout;
* ``torchvision``: plain torchvision ResNet keys.

Either may carry a DataParallel ``module.`` (or ``torch.compile`` ``_orig_mod.``) prefix, and
may be wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``. radsal models hold the network
under ``backbone.``, so conversion is a prefix change: weights are never transformed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ml.checkpoint.errors import CheckpointError

__all__ = ["extract_state_dict", "infer_arch", "strip_prefixes"]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a foreign checkpoint, or CheckpointError if there is none."""
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and _is_tensor_dict(obj[key]):
                return dict(obj[key])
    kind = type(obj).__name__
    keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else ""
    raise CheckpointError(
        "file loaded but holds no model weights: expected a radsal/1 checkpoint or a state dict"
        f" of tensors (got {kind}{' with keys ' + keys if keys else ''})"
    )


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes shared by all keys (DataParallel/DDP ``module.``, ``_orig_mod.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def _blocks_per_stage(sd: Mapping[str, torch.Tensor]) -> tuple[list[int], bool]:
    counts = []
    for stage in range(1, 5):
        idx = {
            int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k)) is not None
        }
        counts.append(len(idx))
    bottleneck = any(re.match(r"layer1\.0\.conv3\.", k) for k in sd)
    return counts, bottleneck


def infer_arch(sd: Mapping[str, torch.Tensor]) -> str | None:
    """Arch name from a backbone state dict's block structure, or None if ambiguous/unknown."""
    if any(k.startswith("features.denseblock") for k in sd):
        blocks = {m.group(1) for k in sd if (m := re.match(r"features\.denseblock(\d)\.", k))}
        n4 = {
            m.group(1)
            for k in sd
            if (m := re.match(r"features\.denseblock4\.denselayer(\d+)\.", k))
        }
        return "densenet121" if len(blocks) == 4 and len(n4) == 16 else None
    counts, bottleneck = _blocks_per_stage(sd)
    stem = sd.get("conv1.weight")
    if counts == [1, 1, 1, 1] and stem is not None and stem.shape[0] == 8:
        return "resnet_tiny"
    table: dict[tuple[tuple[int, ...], bool], str] = {
        ((2, 2, 2, 2), False): "resnet18",
        ((3, 4, 6, 3), False): "resnet34",
        ((3, 4, 6, 3), True): "resnet50",
        ((3, 4, 23, 3), True): "resnet101",
    }
    return table.get((tuple(counts), bottleneck))


def classifier_shape(sd: Mapping[str, torch.Tensor]) -> tuple[int | None, int | None]:
    """(num_classes, in_channels) read from the classifier and stem weights when present."""
    fc = sd.get("fc.weight", sd.get("classifier.weight"))
    stem = sd.get("conv1.weight", sd.get("features.conv0.weight"))
    return (
        int(fc.shape[0]) if fc is not None else None,
        int(stem.shape[1]) if stem is not None else None,
    )
