"""Null baselines for map metrics: what a map scores when it *cannot* know where the lesion is.

* **shuffled masks**: each case's map measured against another case's mask (a derangement over
  the cases that have one). Maps that follow anatomy (the lungs) rather than the lesion score
  as well against other patients' boxes as against their own; this is the chance level that
  counts, not the mask area.
* **randomised weights**: the trained model with every parameter tensor's entries randomly
  permuted: the same architecture and weight statistics (BN statistics kept), no learned
  structure;
* **untrained**: the same architecture freshly initialised (its inductive bias alone).

The model baselines run through the same map pipeline as real arms; the shuffled-mask rows
are computed from the raw maps a comparison wrote (``<arm>/raw/<case>.npy``), post-processed
exactly as the pipeline does, so they need no second saliency pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.explain.cases import CaseSet, model_batch
from ml.explain.metrics import mask_energy, pointing_game
from ml.explain.postprocess import postprocess
from ml.explain.sanity import randomize_model

__all__ = [
    "SHUFFLED",
    "derangement",
    "is_degenerate",
    "mark_degenerate",
    "permuted_weights",
    "shuffled_mask_rows",
    "untrained_copy",
]

SHUFFLED = "shuffled masks"


def is_degenerate(raw: np.ndarray) -> bool:
    """A map with nothing to point at: constant (all-zero included) or not finite."""
    a = np.asarray(raw, dtype=np.float64)
    return a.size == 0 or not np.isfinite(a).all() or float(np.ptp(a)) == 0.0


def permuted_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose parameter tensors each have their entries randomly permuted."""
    clone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in clone.parameters():
            flat = p.detach().reshape(-1)
            p.copy_(flat[torch.randperm(flat.numel(), generator=gen)].reshape(p.shape))
    return clone.eval()


def untrained_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture (dual BN and normalisation included), freshly initialised."""
    return randomize_model(model, seed=seed).eval()


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A random permutation of ``range(n)`` without fixed points (n >= 2)."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, dtype=int)
    perm[order] = np.roll(order, -1)  # a single cycle through a random order
    return perm


def shuffled_mask_rows(
    out_dir: Path,
    arm: str,
    cases: CaseSet,
    *,
    image_size: int,
    in_channels: int,
    postprocess_mode: str,
    postprocess_params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per masked case: its own map (read back from ``out_dir/arm/raw``) scored
    against another case's mask. Arm name: ``"<arm> · shuffled masks"``."""
    masked = [c for c in cases.cases if c.mask is not None and c.mask.any()]
    if len(masked) < 2:
        return []
    batch = model_batch(masked, image_size, in_channels)
    assert batch.masks is not None
    raw = torch.stack(
        [
            torch.from_numpy(np.load(out_dir / arm / "raw" / f"{c.case_id}.npy").astype(np.float32))
            for c in masked
        ]
    )
    perm = torch.from_numpy(derangement(len(masked), seed))
    other = batch.masks[perm]
    maps01 = postprocess(raw, postprocess_mode, **dict(postprocess_params or {}))
    energy = mask_energy(maps01, other)
    point = pointing_game(raw, other)
    area = other.flatten(1).float().mean(dim=1)
    return [
        {
            "case_id": c.case_id,
            "arm": f"{arm} · {SHUFFLED}",
            "mask_from": masked[int(perm[i])].case_id,
            "mask_energy": float(energy[i]),
            "pointing": float(point[i]),
            "mask_area": float(area[i]),
            "degenerate": is_degenerate(raw[i].numpy()),
        }
        for i, c in enumerate(masked)
    ]


def mark_degenerate(out_dir: Path, rows: Sequence[dict[str, Any]]) -> int:
    """Set ``degenerate`` on comparison rows from their raw maps; return how many are."""
    count = 0
    for row in rows:
        path = out_dir / str(row["arm"]) / "raw" / f"{row['case_id']}.npy"
        flag = path.is_file() and is_degenerate(np.load(path))
        row["degenerate"] = flag
        count += flag
    return count
