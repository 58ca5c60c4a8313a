"""Run a model over a loader (optionally under attack) and collect probabilities and targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ml.attacks import AttackConfig, classification_loss, run_attack
from ml.models import bn_route

__all__ = ["Predictions", "predict"]


@dataclass
class Predictions:
    probs: np.ndarray  # N×K (softmax for multi-class, sigmoid for multi-label)
    targets: np.ndarray  # N (class index) or N×K (0/1/-1)
    loss: float  # mean loss over samples


def predict(
    model: nn.Module,
    loader: DataLoader,  # type: ignore[type-arg]
    *,
    multilabel: bool,
    device: torch.device,
    route: str = "clean",
    attack: AttackConfig | None = None,
    progress: bool = False,
    desc: str = "eval",
    amp_dtype: torch.dtype | None = None,
) -> Predictions:
    """Evaluate in eval mode through BN ``route``; with ``attack``, on PGD images attacking
    the same route (the model is attacked as it is evaluated)."""
    model.eval()
    probs, targets, losses = [], [], []
    n = 0
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if attack is not None and attack.eps > 0:
            x = run_attack(model, x, y, attack, multilabel=multilabel, route=route)
        with (
            torch.no_grad(),
            bn_route(model, route),
            torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
        ):
            logits = model(x).float()
        losses.append(float(classification_loss(logits, y, multilabel, reduction="sum")))
        n += x.shape[0] if not multilabel else 0
        if multilabel:
            n += int((y >= 0).sum())
        p = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
        probs.append(p.cpu().numpy())
        targets.append(y.cpu().numpy())
    if not probs:
        return Predictions(np.zeros((0, 0)), np.zeros((0,)), float("nan"))
    return Predictions(np.concatenate(probs), np.concatenate(targets), sum(losses) / max(n, 1))
