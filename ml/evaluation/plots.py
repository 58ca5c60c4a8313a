"""PNG plots for evaluation reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ml.evaluation.metrics import one_vs_rest, roc_curve_points

__all__ = ["plot_robustness", "plot_roc"]


def plot_roc(
    path: Path,
    probs: np.ndarray,
    targets: np.ndarray,
    class_names: list[str],
    multilabel: bool,
    per_class: dict[str, dict[str, Any]],
    title: str,
) -> Path:
    """One ROC curve per class with its AUROC and 95 % CI in the legend."""
    onehot = one_vs_rest(targets, len(class_names), multilabel)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for c, name in enumerate(class_names):
        valid = onehot[:, c] >= 0
        y = onehot[valid, c]
        if y.min(initial=1) == y.max(initial=0):
            continue
        fpr, tpr = roc_curve_points(y, probs[valid, c])
        s = per_class[name]
        ax.plot(
            fpr,
            tpr,
            lw=1.5,
            label=f"{name}: {s['auroc']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
        )
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_robustness(path: Path, curves: dict[str, list[dict[str, float]]], norm: str) -> Path:
    """Accuracy and macro AUROC against ε, one line per BN route."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=120)
    for route, rows in curves.items():
        eps = [r["eps"] for r in rows]
        axes[0].plot(eps, [r["accuracy"] for r in rows], marker="o", label=route)
        axes[1].plot(eps, [r["macro_auroc"] for r in rows], marker="o", label=route)
    for ax, what in zip(axes, ("accuracy", "macro AUROC"), strict=True):
        ax.set(xlabel=f"ε ({norm})", ylabel=what, ylim=(0, 1.02), title=f"robust {what}")
        ax.grid(alpha=0.3)
        ax.legend(title="BN route", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
