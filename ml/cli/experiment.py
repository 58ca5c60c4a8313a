"""``radsal experiment``: standard vs dual-BN, trained, evaluated and explained in one command.

Trains both models with the same seed and split, evaluates them on the held-out split (AUROC
with CIs, robustness, dual-BN branch divergence), computes saliency maps of the standard model
and of both BN routes of the dual-BN model with null baselines (shuffled masks, randomised
weights, untrained) and paired statistics, and writes OUT/report.html. Rerunning the same
command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ml.cli.common import comma_list, float_list, report_error
from ml.data import AUGMENT_PRESETS, DatasetError, ImageLoadError
from ml.explain.choices import METHODS
from ml.models import list_archs
from ml.training.config import MASK_SPLITS, SELECT_METRICS

__all__ = ["add_parser", "main"]

_EPILOG = """example (CPU, a few minutes):
  radsal experiment --data data/synth --out runs/exp --arch resnet_tiny --image-size 64 \\
      --epochs 8 --lr 3e-3 --augment none --eps 0.01 --steps 3 --threads 2

training options not given take radsal train's defaults (TrainConfig); --test-fraction
defaults to 0.2 here (a CSV without a split column gets a held-out test split).
"""

# Options forwarded to TrainConfig by field name; None (not given) keeps TrainConfig's default.
_TRAIN_FIELDS = (
    "arch",
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "augment",
    "eps",
    "steps",
    "step_size",
    "bn_momentum",
    "seed",
    "val_fraction",
    "test_fraction",
    "mask_split",
    "select_metric",
    "label_columns",
    "threads",
    "device",
    "max_steps_per_epoch",
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "experiment",
        help="train standard and dual-BN models, evaluate, compare maps, write an HTML report",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="data set (as for radsal train)")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    t = p.add_argument_group("training (both models; defaults: radsal train's)")
    t.add_argument("--arch", choices=list_archs())
    t.add_argument("--image-size", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--augment", choices=sorted(AUGMENT_PRESETS))
    t.add_argument("--eps", type=float, help="dual-BN training ε")
    t.add_argument("--steps", type=int, help="PGD steps in dual-BN training")
    t.add_argument("--step-size", type=float, help="PGD step (default 2.5·ε/steps)")
    t.add_argument("--bn-momentum", type=float)
    t.add_argument("--seed", type=int, help="one seed for both models and the split")
    t.add_argument("--val-fraction", type=float)
    t.add_argument("--test-fraction", type=float, help="default here: 0.2")
    t.add_argument("--mask-split", choices=MASK_SPLITS)
    t.add_argument("--select-metric", choices=SELECT_METRICS)
    t.add_argument("--label-columns", type=comma_list, help="CSV label columns (multi-label)")
    t.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (smoke runs)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    e = p.add_argument_group("evaluation and maps")
    e.add_argument("--eval-eps", type=float_list, help="ε sweep (default ε/2, ε, 2ε)")
    e.add_argument("--eval-steps", type=int, default=10, help="PGD steps of the sweep")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs")
    e.add_argument("--method", choices=METHODS, default="gradient", help="saliency method")
    e.add_argument("--target", default="predicted", help="predicted | ground_truth | class:<name>")
    e.add_argument("--limit", type=int, help="at most N held-out cases for the maps")
    e.add_argument("--faithfulness-steps", type=int, default=16, help="0 skips deletion/insertion")
    e.add_argument("--sanity-cases", type=int, default=8, help="0 skips the randomisation check")
    e.add_argument("--no-nulls", dest="nulls", action="store_false", help="no null-model arms")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="quiet")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ml.checkpoint import CheckpointError
    from ml.experiment import ExperimentConfig, run_experiment

    given: dict[str, Any] = {
        k: getattr(args, k) for k in _TRAIN_FIELDS if getattr(args, k, None) is not None
    }
    cfg = ExperimentConfig(
        data=args.data,
        out=args.out,
        train=given,
        eval_eps=args.eval_eps,
        eval_steps=args.eval_steps,
        n_bootstrap=args.bootstrap,
        method=args.method,
        target=args.target,
        limit=args.limit,
        faithfulness_steps=args.faithfulness_steps,
        sanity_cases=args.sanity_cases,
        nulls=args.nulls,
        progress=args.progress,
    )
    try:
        state = run_experiment(cfg)
    except (ValueError, OSError, DatasetError, ImageLoadError, CheckpointError) as exc:
        return report_error("experiment", exc)
    report = Path(args.out) / "report.html"
    print(json.dumps({"report": str(report), "stages": list(state["done"])}))
    return 0
