"""One training epoch and one validation pass for every training mode.

The per-mode step is where the science lives:

* ``standard``: loss(model(x)).
* ``adversarial`` / ``fast``: loss(model(x_adv)); PGD-k or FGSM-with-random-start images made
  in eval mode (Madry et al.; Wong et al.).
* ``dual``: loss(clean through the clean BN) + loss(adversarial through the adversarial BN), the
  attack run through the adversarial BN in eval mode (Han et al. 2021). Both halves go through
  one forward/backward with the "split" route, which equals two routed passes exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ml.attacks import AttackConfig, classification_loss, fgsm_attack, run_attack
from ml.evaluation.metrics import accuracy, macro_auroc
from ml.evaluation.predict import predict
from ml.models import split_route, unwrap
from ml.training.config import TrainConfig

__all__ = ["attack_config", "evaluate", "train_one_epoch", "training_step"]


def attack_config(cfg: TrainConfig) -> AttackConfig:
    return AttackConfig(
        norm=cfg.norm,
        eps=cfg.eps,
        step_size=cfg.attack_step_size,
        steps=1 if cfg.mode == "fast" else cfg.steps,
        random_start=cfg.random_start or cfg.mode == "fast",
    )


def training_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    multilabel: bool,
    amp_dtype: torch.dtype | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch for ``cfg.mode`` (graph attached, not yet backpropagated)."""
    device_type = x.device.type
    stats: dict[str, float] = {}

    def forward(inp: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return model(inp).float()

    if cfg.mode == "standard":
        loss = classification_loss(forward(x), y, multilabel)
        stats["loss_clean"] = float(loss.detach())
        return loss, stats
    # Attacks run on the bare module: DDP must see exactly one forward per backward.
    bare = unwrap(model)
    att = attack_config(cfg)
    with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
        if cfg.mode == "fast":
            x_adv = fgsm_attack(
                bare,
                x,
                y,
                eps=att.eps,
                step_size=att.step_size,
                norm=att.norm,
                multilabel=multilabel,
            )
        else:
            x_adv = run_attack(
                bare, x, y, att, multilabel=multilabel, route="adv" if cfg.dual_bn else "clean"
            )
    if cfg.mode == "dual":
        n = x.shape[0]
        with split_route(model, n):
            logits = forward(torch.cat([x, x_adv]))
        loss_clean = classification_loss(logits[:n], y, multilabel)
        loss_adv = classification_loss(logits[n:], y, multilabel)
        stats.update(loss_clean=float(loss_clean.detach()), loss_adv=float(loss_adv.detach()))
        return loss_clean + loss_adv, stats
    loss = classification_loss(forward(x_adv), y, multilabel)
    stats["loss_adv"] = float(loss.detach())
    return loss, stats


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,  # type: ignore[type-arg]
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    cfg: TrainConfig,
    *,
    epoch: int,
    device: torch.device,
    multilabel: bool,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    after_train_mode: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train for one epoch; returns mean losses, images/s and the final learning rate."""
    model.train()
    if after_train_mode is not None:
        after_train_mode()
    totals: dict[str, float] = {}
    seen = 0
    start = time.perf_counter()
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs} [{cfg.mode}]",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    for step, (x, y) in enumerate(bar):
        if cfg.max_steps_per_epoch is not None and step >= cfg.max_steps_per_epoch:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if device.type == "cuda" and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, stats = training_step(model, x, y, cfg, multilabel=multilabel, amp_dtype=amp_dtype)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at epoch {epoch + 1} step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        b = x.shape[0]
        seen += b
        stats["loss"] = loss_value
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + v * b
        bar.set_postfix(loss=f"{loss_value:.4f}")
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {f"train_{k}": v / max(seen, 1) for k, v in totals.items()}
    out.update(
        train_images=seen,
        train_seconds=elapsed,
        train_images_per_s=seen / elapsed if elapsed > 0 else float("nan"),
        lr=optimizer.param_groups[0]["lr"],
    )
    return out


def evaluate(
    model: nn.Module,
    loader: DataLoader,  # type: ignore[type-arg]
    *,
    device: torch.device,
    multilabel: bool,
    route: str = "clean",
    attack: AttackConfig | None = None,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    prefix: str = "val",
) -> dict[str, Any]:
    """Loss, macro AUROC, per-class AUROC and accuracy on ``loader`` (clean BN by default)."""
    preds = predict(
        unwrap(model),
        loader,
        multilabel=multilabel,
        device=device,
        route=route,
        attack=attack,
        progress=progress,
        desc=prefix,
        amp_dtype=amp_dtype,
    )
    per, macro = macro_auroc(preds.probs, preds.targets, multilabel)
    # Distinct predictions (argmax, or thresholded label sets): one distinct prediction for a
    # split with several true classes is a collapse, which accuracy alone hides.
    if multilabel:
        predicted = len(np.unique(preds.probs >= 0.5, axis=0))
        truth = len(np.unique(np.asarray(preds.targets), axis=0))
    else:
        predicted = len(np.unique(preds.probs.argmax(1)))
        truth = len(np.unique(np.asarray(preds.targets)))
    return {
        f"{prefix}_loss": preds.loss,
        f"{prefix}_auroc": macro,
        f"{prefix}_auroc_per_class": per,
        f"{prefix}_accuracy": accuracy(preds.probs, preds.targets, multilabel),
        f"{prefix}_predicted_classes": predicted,
        f"{prefix}_collapsed": predicted == 1 and truth > 1,
    }
