"""Initialise a model from a checkpoint for fine-tuning (``--init-from``).

Handles the cases the recipes need: same architecture and BN layout (exact copy); a dual-BN
checkpoint into a single-BN model (take one branch, ``init_route``); a single-BN checkpoint
into a dual-BN model (copy the BN into both branches); a different number of classes (keep the
new, randomly initialised classifier and say so).
"""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from ml.checkpoint import CheckpointError, load_checkpoint
from ml.models import is_dual_bn, unwrap

__all__ = ["init_from_checkpoint"]

log = logging.getLogger(__name__)
_BNS = re.compile(r"\.bns\.(\d)\.")
_BN_TAILS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _dual_to_single(sd: dict[str, torch.Tensor], branch: int) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        m = _BNS.search(k)
        if m is None:
            out[k] = v
        elif int(m.group(1)) == branch:
            out[_BNS.sub(".", k)] = v
    return out


def _single_to_dual(sd: dict[str, torch.Tensor], target_keys: set[str]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        stem, _, tail = k.rpartition(".")
        dual0 = f"{stem}.bns.0.{tail}"
        if tail in _BN_TAILS and dual0 in target_keys:
            out[dual0] = v.clone()
            out[f"{stem}.bns.1.{tail}"] = v.clone()
        else:
            out[k] = v
    return out


def init_from_checkpoint(model: nn.Module, path: str, init_route: str | None) -> dict[str, object]:
    """Copy weights from ``path`` into ``model``; returns a summary for the run's metadata."""
    loaded = load_checkpoint(path)
    target = unwrap(model)
    sd = loaded.model.state_dict()
    own = target.state_dict()
    src_dual, dst_dual = bool(loaded.meta["dual_bn"]), is_dual_bn(target)
    route = init_route or "clean"
    if src_dual and not dst_dual:
        sd = _dual_to_single(sd, 1 if route == "adv" else 0)
    elif dst_dual and not src_dual:
        sd = _single_to_dual(sd, set(own))
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if any(not k.startswith(("backbone.fc.", "backbone.classifier.")) for k in skipped):
        raise CheckpointError(
            f"--init-from {path}: weights do not fit this architecture ({', '.join(skipped[:5])})"
        )
    usable = {k: v for k, v in sd.items() if k in own and k not in skipped}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if any(
        not k.startswith(("backbone.fc.", "backbone.classifier.", "normalize.")) for k in missing
    ):
        raise CheckpointError(
            f"--init-from {path}: checkpoint lacks {', '.join(missing[:5])} for this architecture"
        )
    target.load_state_dict(usable, strict=False)
    if skipped:
        log.warning("init-from: classifier has a different shape; it stays randomly initialised")
    return {
        "init_from": str(path),
        "init_from_sha256": loaded.sha256,
        "init_route": route if src_dual and not dst_dual else None,
        "init_new_classifier": bool(skipped),
    }
