"""``train(config)``: data, model, optimiser, schedule, epochs, logs and checkpoints.

Writes to ``config.out``: ``best.pt`` (best clean validation AUROC, or loss), ``last.pt``
(everything needed to resume: model, optimiser, scheduler, epoch, best metric, RNG states),
``metrics.jsonl`` and ``metrics.csv`` (one row per epoch, with the dual-BN divergence for
dual-BN runs), ``selection.json`` (what picked best.pt, and warnings) and ``config.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ml.checkpoint import CheckpointError, read_checkpoint_dict, save_checkpoint
from ml.data import build_datasets
from ml.evaluation.dual_bn import dual_bn_diagnostics
from ml.models import create_model, unwrap
from ml.training.config import TrainConfig
from ml.training.distributed import DistContext, cleanup_distributed, setup_distributed
from ml.training.freeze import freeze_through, keep_frozen_in_eval
from ml.training.init import init_from_checkpoint
from ml.training.loop import attack_config, evaluate, train_one_epoch
from ml.training.selection import selection_warnings

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    history: list[dict[str, Any]]
    final_metrics: dict[str, Any]
    best_metric: float
    out_dir: Path
    class_names: list[str] = field(default_factory=list)
    # {"metric", "epoch", "value", "warnings"}: what picked best.pt and what to worry about.
    selection: dict[str, Any] = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state(loader_gen: torch.Generator) -> dict[str, Any]:
    """RNG states as weights-only-loadable values (tensors, ints, lists)."""
    np_state = cast(tuple[Any, ...], np.random.get_state())
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(np_state[0]),
            torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)),
            *(float(v) for v in np_state[2:]),
        ],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "loader": loader_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], loader_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"].cpu())
    loader_gen.set_state(state["loader"].cpu())
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _optimizer(cfg: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-step schedule: linear warm-up, then cosine to 0 or ÷10 at 50 % and 75 %."""
    if cfg.schedule == "none" and cfg.warmup_epochs <= 0:
        return None
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        if cfg.schedule == "step":
            return 0.1 ** sum(step >= total * m for m in (0.5, 0.75))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    with (out / "metrics.jsonl").open("w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")
    flat = [{k: v for k, v in row.items() if not isinstance(v, list)} for row in history]
    keys: list[str] = []
    for row in flat:
        keys += [k for k in row if k not in keys]
    with (out / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)


def _is_better(metric: str, value: float, best: float) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value < best if metric == "loss" else value > best


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Run a full training; see :class:`TrainConfig` for the modes and options."""
    ctx: DistContext = setup_distributed(config.device)
    try:
        return _train(config, ctx, progress and ctx.is_main)
    finally:
        cleanup_distributed(ctx)


def _train(cfg: TrainConfig, ctx: DistContext, progress: bool) -> TrainResult:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(cfg.seed + ctx.rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = ctx.device
    bundle = build_datasets(
        cfg.data,
        cfg.image_size,
        cfg.in_channels,
        cfg.augment,
        label_columns=cfg.label_columns,
        uncertainty=cfg.uncertainty,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        mask_split=cfg.mask_split,
        seed=cfg.seed,
    )
    k = len(bundle.class_names)
    per_rank = math.ceil(len(bundle.train) / ctx.world_size)
    steps_per_epoch = max(1, per_rank // cfg.batch_size) if per_rank > cfg.batch_size else 1
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    bn_momentum = cfg.resolved_bn_momentum(cfg.epochs * steps_per_epoch)
    model = create_model(
        cfg.arch,
        k,
        cfg.in_channels,
        dual_bn=cfg.dual_bn,
        normalize=cfg.normalize,
        bn_momentum=bn_momentum,
    )
    init_info: dict[str, object] = {}
    if cfg.init_from:
        init_info = init_from_checkpoint(model, cfg.init_from, cfg.init_route)
    frozen = freeze_through(model, cfg.freeze_through) if cfg.freeze_through else []
    model.to(device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    amp_dtype = torch.bfloat16 if (cfg.amp and device.type == "cuda") else None
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(bundle.train, shuffle=True, seed=cfg.seed) if ctx.enabled else None
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(
        bundle.train,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=len(bundle.train) > cfg.batch_size,
        generator=gen,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
    val_loader = DataLoader(
        bundle.val, batch_size=max(cfg.batch_size, 64), num_workers=cfg.num_workers
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(cfg, params)
    scheduler = _scheduler(cfg, optimizer, steps_per_epoch)
    net: nn.Module = model
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    # A standard run records no attack settings: it never attacked anything, and a reader
    # (or evaluate's default ε sweep) must not take an unused default for a training ε.
    attack_meta: dict[str, Any] = (
        {
            "norm": cfg.norm,
            "eps": cfg.eps,
            "step_size": cfg.attack_step_size,
            "steps": attack_config(cfg).steps,
            "random_start": attack_config(cfg).random_start,
        }
        if cfg.mode != "standard"
        else {}
    )
    train_meta: dict[str, Any] = {
        "label": cfg.run_label,
        "mode": cfg.mode,
        **attack_meta,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "optimizer": cfg.optimizer,
        "schedule": cfg.schedule,
        "augment": cfg.augment,
        "bn_momentum": bn_momentum,
        "seed": cfg.seed,
        "arch": cfg.arch,
        "freeze_through": cfg.freeze_through,
        "select_metric": cfg.select_metric,
        "multilabel": bundle.multilabel,
        "label_columns": cfg.label_columns,
        "uncertainty": cfg.uncertainty,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
        "mask_split": cfg.mask_split,
        "split": bundle.info["split"],
        "data": str(cfg.data),
        "world_size": ctx.world_size,
        **init_info,
    }
    ckpt_meta: dict[str, Any] = {
        "arch": cfg.arch,
        "num_classes": k,
        "class_names": bundle.class_names,
        "in_channels": cfg.in_channels,
        "image_size": cfg.image_size,
        "normalize": unwrap(model).normalize_spec,
        "dual_bn": cfg.dual_bn,
    }
    best_path, last_path = out / "best.pt", out / "last.pt"
    history: list[dict[str, Any]] = []
    best = math.nan
    best_epoch: int | None = None
    start_epoch = 0
    probe = _diagnostic_batch(bundle.val, device) if cfg.dual_bn else None
    if cfg.resume and last_path.is_file():
        raw, _, _ = read_checkpoint_dict(last_path)
        resume = (raw.get("extra") or {}).get("resume") if isinstance(raw, dict) else None
        if not resume:
            raise CheckpointError(f"{last_path}: no resume state in this checkpoint")
        unwrap(model).load_state_dict(raw["state_dict"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None and resume.get("scheduler"):
            scheduler.load_state_dict(resume["scheduler"])
        start_epoch = int(resume["epoch"]) + 1
        best = float(resume["best"])
        history = list(resume["history"])
        best_epoch = next((int(h["epoch"]) for h in reversed(history) if h.get("best")), None)
        _set_rng_state(resume["rng"], gen)
        log.info("resumed from %s at epoch %d", last_path, start_epoch + 1)
    if ctx.is_main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))

    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(
            train_one_epoch(
                net,
                train_loader,
                optimizer,
                scheduler,
                cfg,
                epoch=epoch,
                device=device,
                multilabel=bundle.multilabel,
                amp_dtype=amp_dtype,
                progress=progress,
                after_train_mode=(lambda: keep_frozen_in_eval(frozen)) if frozen else None,
            )
        )
        row.update(
            evaluate(
                model,
                val_loader,
                device=device,
                multilabel=bundle.multilabel,
                route="clean",
                amp_dtype=amp_dtype,
            )
        )
        if probe is not None:
            diag = dual_bn_diagnostics(model, probe, bundle.multilabel)
            row.update({k: v for k, v in diag.items() if k not in ("bn_layers", "n_images")})
        value = row["val_loss"] if cfg.select_metric == "loss" else row["val_auroc"]
        improved = _is_better(cfg.select_metric, value, best)
        if improved:
            best = value
            best_epoch = epoch + 1
        row["best"] = improved
        history.append(row)
        if ctx.is_main:
            meta = {
                **train_meta,
                "epoch": epoch + 1,
                "val": {k2: v for k2, v in row.items() if k2.startswith("val_")},
            }
            if improved:
                save_checkpoint(best_path, model, train=meta, **ckpt_meta)
            resume_state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch,
                "best": best,
                "history": history,
                "rng": _rng_state(gen),
            }
            save_checkpoint(
                last_path, model, train=meta, extra={"resume": resume_state}, **ckpt_meta
            )
            _write_logs(out, history)
            if progress:
                from tqdm.auto import tqdm

                tqdm.write(
                    f"epoch {epoch + 1}/{cfg.epochs} {cfg.mode}: "
                    f"train loss {row.get('train_loss', float('nan')):.4f} | "
                    f"val loss {row['val_loss']:.4f} auroc {row['val_auroc']:.3f} "
                    f"acc {row['val_accuracy']:.3f}"
                    f"{' (one class predicted)' if row['val_collapsed'] else ''}"
                    f"{' *' if improved else ''}"
                )
    warnings = selection_warnings(history, cfg.select_metric, best_epoch)
    selection = {
        "metric": f"val_{cfg.select_metric}",
        "epoch": best_epoch,
        "value": None if math.isnan(best) else best,
        "warnings": warnings,
    }
    if ctx.is_main:
        if best_epoch is None:
            # Validation never gave a finite metric: keep the last model as "best", not none.
            meta = {**train_meta, "epoch": cfg.epochs, "selection": selection}
            save_checkpoint(best_path, model, train=meta, **ckpt_meta)
        elif best_path.is_file():
            # best.pt again, now with the verdict on the whole run (warnings need every epoch).
            raw, _, _ = read_checkpoint_dict(best_path)
            unwrap(model).load_state_dict(raw["state_dict"])
            meta = {**dict(raw.get("train") or {}), "selection": selection}
            save_checkpoint(best_path, model, train=meta, **ckpt_meta)
        (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
        for text in warnings:
            log.warning("WARNING (%s): %s", cfg.run_label, text)
    final = history[-1] if history else {}
    return TrainResult(
        best_path, last_path, history, final, best, out, bundle.class_names, selection
    )


def _diagnostic_batch(dataset: Dataset[Any], device: torch.device) -> torch.Tensor | None:
    """Up to 32 validation images, fixed for the run: where the BN branches are compared."""
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        return None
    # Evenly spaced, so a class-sorted split contributes every class.
    picks = np.linspace(0, size - 1, min(size, 32)).round().astype(int)
    return torch.stack([dataset[int(i)][0] for i in picks]).to(device)
