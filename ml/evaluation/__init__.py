"""Evaluation: AUROC with bootstrap CIs, ROC plots, robust accuracy over an ε sweep."""

from ml.evaluation.metrics import (
    accuracy,
    auroc,
    bootstrap_auroc_ci,
    macro_auroc,
    roc_curve_points,
)
from ml.evaluation.predict import Predictions, predict
from ml.evaluation.report import default_eps_sweep, evaluate_checkpoint

__all__ = [
    "Predictions",
    "accuracy",
    "auroc",
    "bootstrap_auroc_ci",
    "default_eps_sweep",
    "evaluate_checkpoint",
    "macro_auroc",
    "predict",
    "roc_curve_points",
]
