"""The demo's two models: trained and evaluated with ml, exactly as ``radsal train`` and
``radsal evaluate`` would.

`train_config` starts from ml's `TrainConfig` (the one source of training defaults) and changes
only what the demo means to change; the manifest key of a training step is the whole config,
so a changed ml default retrains the demo's models on the next run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.demo.options import DemoOptions
from ml.evaluation import evaluate_checkpoint
from ml.training import TrainConfig, train

# Per-run paths and the device do not change what a model learns: not part of its key.
_NOT_IN_KEY = ("data", "out", "device")
EVAL_BOOTSTRAP = 200


def train_config(
    options: DemoOptions, *, data: str, out: Path, mode: str, device: str
) -> TrainConfig:
    """ml's defaults, except the user's demo options and three deliberate changes below."""
    return TrainConfig(
        data=data,
        out=str(out),
        mode=mode,
        device=device,
        arch=options.arch,
        epochs=options.epochs,
        image_size=options.image_size,
        batch_size=options.batch_size,
        seed=options.seed,
        # The dual-BN model trains against the short PGD the evaluation attacks with, so
        # "robust" in the summary means robust to what was measured.
        eps=options.attack_eps,
        steps=options.attack_steps,
        # A few hundred steps in all: a higher rate than ml's default and BN statistics that
        # follow quickly (the paper's momentum 0.01 needs thousands of steps to settle).
        lr=3e-3,
        bn_momentum=0.1,
        # Synthetic lesions sit at fixed positions with their masks: no flips or crops.
        augment="none",
    )


def training_key(config: TrainConfig, data_fingerprint: str) -> dict[str, Any]:
    """What a trained model depends on: the data and every training setting."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_KEY}
    return {"data": data_fingerprint, **settings}


def train_model(config: TrainConfig, *, progress: bool) -> dict[str, Any]:
    """Train one model with ml's real training loop; the best checkpoint and its hash."""
    result = train(config, progress=progress)
    best = Path(result.best_path)
    last = result.history[-1] if result.history else {}
    return {
        "checkpoint": str(best),
        "sha256": hashlib.sha256(best.read_bytes()).hexdigest(),
        "val_auroc": last.get("val_auroc"),
        "epochs": len(result.history),
    }


def evaluate_models(
    options: DemoOptions,
    dataset: Mapping[str, Any],
    trained: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    device: str,
) -> dict[str, Any]:
    """Validation AUROC of both models, clean and under PGD (reports and ROC plots land in
    ``out_dir``)."""
    out: dict[str, Any] = {}
    for arm, info in trained.items():
        report = evaluate_checkpoint(
            info["checkpoint"],
            dataset["csv"],
            split="val",
            eps=[options.attack_eps],
            norm="linf",
            steps=options.attack_steps,
            out_dir=out_dir / arm,
            n_bootstrap=EVAL_BOOTSTRAP,
            progress=options.progress,
            device=device,
            seed=options.seed,
        )
        out[arm] = {**summarize_report(report, options.attack_eps), "report": str(out_dir / arm)}
    return out


def summarize_report(report: Mapping[str, Any], eps: float) -> dict[str, Any]:
    """AUROC through the clean BN route (the paper's choice), clean and under attack at eps."""
    clean = report["routes"]["clean"]
    attacked = next((r for r in clean["robust"] if abs(r["eps"] - eps) < 1e-12), None)
    return {
        "auroc_clean": clean["macro_auroc"],
        "auroc_attack": attacked["macro_auroc"] if attacked else None,
        "accuracy_clean": clean["accuracy"],
        "accuracy_attack": attacked["accuracy"] if attacked else None,
    }
