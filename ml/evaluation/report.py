"""``evaluate_checkpoint``: the numbers a paper needs about one model, as JSON plus plots.

Clean metrics per BN route (both routes for dual-BN models), per-class AUROC with bootstrap 95 %
CIs, accuracy, and robust accuracy / AUROC over an ε sweep, each route attacked white-box
through itself (PGD, random start, step 2.5·ε/steps).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ml.attacks import AttackConfig
from ml.checkpoint import load_checkpoint
from ml.data import DatasetError, build_datasets
from ml.data.splits import heldout_split, split_mismatch, split_options
from ml.device import resolve_device
from ml.evaluation.dual_bn import dual_bn_diagnostics, not_separated
from ml.evaluation.metrics import accuracy, bootstrap_auroc_ci, macro_auroc, one_vs_rest
from ml.evaluation.plots import plot_robustness, plot_roc
from ml.evaluation.predict import predict

__all__ = ["default_eps_sweep", "evaluate_checkpoint"]


def _clean_float(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def default_eps_sweep(train_meta: dict[str, Any], norm: str) -> list[float]:
    """0, ½ε, ε, 2ε around the training ε (or a norm-typical ε for standard models)."""
    eps = (
        float(train_meta.get("eps") or 0.0)
        if train_meta.get("mode") not in (None, "standard", "imported")
        else 0.0
    )
    if eps <= 0 or train_meta.get("norm", norm) != norm:
        eps = 0.005 if norm == "linf" else 0.5
    return [0.0, eps / 2, eps, 2 * eps]


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    *,
    split: str | None = None,
    eps: list[float] | None = None,
    norm: str = "linf",
    steps: int = 10,
    out_dir: Path | None = None,
    n_bootstrap: int = 1000,
    progress: bool = True,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split`` of ``data``; write report.json and PNGs to out_dir.

    ``split=None`` takes the held-out split the checkpoint names (test when training made one,
    else val), so a model is not measured on the images it was trained or selected on.
    """
    dev = resolve_device(device)
    loaded = load_checkpoint(checkpoint, map_location=dev)
    meta = loaded.meta
    train_meta = dict(meta.get("train") or {})
    # Same label columns, uncertainty policy and (CSV without split column) the same split as
    # in training, so "val" means the images the model was selected on and nothing else.
    bundle = build_datasets(
        data,
        int(meta["image_size"]),
        int(meta["in_channels"]),
        augment=None,
        **split_options(train_meta),
    )
    split = split or heldout_split(train_meta)
    split_note = split_mismatch(train_meta, bundle.info.get("split"))
    if bundle.class_names != list(meta["class_names"]):
        raise DatasetError(
            f"{data}: classes {bundle.class_names} do not match the checkpoint's "
            f"{meta['class_names']}"
        )
    dataset = bundle.split(split)
    loader = DataLoader(dataset, batch_size=batch_size)
    sweep = sorted(set(default_eps_sweep(train_meta, norm) if eps is None else [0.0, *eps]))
    routes = ["clean", "adv"] if meta["dual_bn"] else ["clean"]
    names = list(meta["class_names"])
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "sha256": loaded.sha256,
        "arch": meta["arch"],
        "dual_bn": meta["dual_bn"],
        "class_names": names,
        "multilabel": bundle.multilabel,
        "data": str(data),
        "split": split,
        "split_check": split_note
        or (
            "same split as in training"
            if (train_meta.get("split") or {}).get("digest")
            else "not recorded in the checkpoint (rebuilt from its seed and fractions)"
        ),
        "n_images": len(dataset),
        "train": train_meta,
        "attack": {
            "norm": norm,
            "steps": steps,
            "step_size": "2.5*eps/steps",
            "random_start": True,
        },
        "n_bootstrap": n_bootstrap,
        "routes": {},
        "plots": {},
    }
    curves: dict[str, list[dict[str, float]]] = {}
    for route in routes:
        torch.manual_seed(seed)
        preds = predict(
            model,
            loader,
            multilabel=bundle.multilabel,
            device=dev,
            route=route,
            progress=progress,
            desc=f"{route} clean",
        )
        per, macro = macro_auroc(preds.probs, preds.targets, bundle.multilabel)
        onehot = one_vs_rest(preds.targets, len(names), bundle.multilabel)
        per_class: dict[str, dict[str, Any]] = {}
        for c, name in enumerate(names):
            valid = onehot[:, c] >= 0
            lo, hi = bootstrap_auroc_ci(
                onehot[valid, c], preds.probs[valid, c], n_bootstrap, seed=seed + c
            )
            per_class[name] = {
                "auroc": _clean_float(per[c]),
                "ci_low": _clean_float(lo),
                "ci_high": _clean_float(hi),
                "n_pos": int((onehot[valid, c] == 1).sum()),
                "n_neg": int((onehot[valid, c] == 0).sum()),
            }
        robust = []
        for e in sweep:
            if e == 0:
                r_acc, r_auc, r_loss = (
                    accuracy(preds.probs, preds.targets, bundle.multilabel),
                    macro,
                    preds.loss,
                )
            else:
                torch.manual_seed(seed)
                att = AttackConfig(norm=norm, eps=e, step_size=2.5 * e / steps, steps=steps)
                rp = predict(
                    model,
                    loader,
                    multilabel=bundle.multilabel,
                    device=dev,
                    route=route,
                    attack=att,
                    progress=progress,
                    desc=f"{route} eps={e:g}",
                )
                r_acc = accuracy(rp.probs, rp.targets, bundle.multilabel)
                r_auc = macro_auroc(rp.probs, rp.targets, bundle.multilabel)[1]
                r_loss = rp.loss
            robust.append({"eps": e, "accuracy": r_acc, "macro_auroc": r_auc, "loss": r_loss})
        curves[route] = robust
        report["routes"][route] = {
            "loss": preds.loss,
            "accuracy": accuracy(preds.probs, preds.targets, bundle.multilabel),
            "macro_auroc": _clean_float(macro),
            "per_class": per_class,
            "robust": [
                {k: (_clean_float(v) if isinstance(v, float) else v) for k, v in r.items()}
                for r in robust
            ],
        }
        if out is not None:
            fname = f"roc_{route}.png"
            kind = f"dual BN, {route} route" if meta["dual_bn"] else "standard"
            title = f"{meta['arch']} ({kind})"
            plot_roc(
                out / fname, preds.probs, preds.targets, names, bundle.multilabel, per_class, title
            )
            report["plots"][f"roc_{route}"] = fname
    if meta["dual_bn"] and len(dataset):
        picks = np.linspace(0, len(dataset) - 1, min(len(dataset), 64)).round().astype(int)
        probe = torch.stack([dataset[int(i)][0] for i in picks]).to(dev)
        diag = dual_bn_diagnostics(model, probe, bundle.multilabel)
        report["dual_bn_divergence"] = {
            **{k: _clean_float(v) for k, v in diag.items()},
            "warning": not_separated(diag),
        }
    report["accuracy"] = report["routes"]["clean"]["accuracy"]
    report["macro_auroc"] = report["routes"]["clean"]["macro_auroc"]
    if out is not None:
        if len(sweep) > 1:
            plot_robustness(out / "robustness.png", curves, norm)
            report["plots"]["robustness"] = "robustness.png"
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report
