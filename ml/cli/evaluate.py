"""``radsal evaluate``: AUROC with bootstrap CIs, ROC plots and robustness over an ε sweep."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ml.checkpoint import CheckpointError
from ml.cli.common import float_list, report_error
from ml.data import DatasetError, ImageLoadError
from ml.evaluation import evaluate_checkpoint

__all__ = ["add_parser", "main"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint: AUROC (95%% CI), accuracy, robustness",
        description=__doc__,
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default=None,
        help="default: the held-out split the checkpoint names (test if training made one)",
    )
    p.add_argument(
        "--eps",
        type=float_list,
        default=None,
        help="comma-separated ε sweep (default: 0, ε/2, ε, 2ε around the training ε)",
    )
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (step size 2.5·ε/steps)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", required=True, help="directory for report.json and PNG plots")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=main)
    return p


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            split=args.split,
            eps=args.eps,
            norm=args.norm,
            steps=args.steps,
            out_dir=Path(args.out),
            n_bootstrap=args.bootstrap,
            progress=args.progress,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (ValueError, DatasetError, ImageLoadError, CheckpointError) as exc:
        return report_error("evaluate", exc)
    print(f"split {report['split']} ({report['split_check']})")
    for route, r in report["routes"].items():
        print(
            f"[{route} BN] n={report['n_images']} accuracy {_fmt(r['accuracy'])} "
            f"macro AUROC {_fmt(r['macro_auroc'])}"
        )
        for name, c in r["per_class"].items():
            print(
                f"  {name:>16}: AUROC {_fmt(c['auroc'])} "
                f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]"
            )
        for row in r["robust"]:
            print(
                f"  eps {row['eps']:<8g} accuracy {_fmt(row['accuracy'])} "
                f"AUROC {_fmt(row['macro_auroc'])}"
            )
    div = report.get("dual_bn_divergence")
    if div:
        print(
            f"[dual BN] branch divergence: BN mean shift {_fmt(div['bn_mean_shift'])}, "
            f"route map Spearman {_fmt(div['map_spearman'])}, predictions differ on "
            f"{_fmt(div['prediction_disagreement'])} of images"
        )
        if div.get("warning"):
            print(f"WARNING: {div['warning']}", file=sys.stderr)
    if report["split_check"].startswith("the data set's split differs"):
        print(f"WARNING: {report['split_check']}", file=sys.stderr)
    print(json.dumps({"report": str(Path(args.out) / "report.json")}))
    return 0
