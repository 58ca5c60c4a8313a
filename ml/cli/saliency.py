"""``radsal saliency``: compare checkpoints' saliency maps on a data set.

Example::

    radsal saliency --checkpoint standard.pt --checkpoint dualbn.pt --route adv \\
        --data data/lesions --method gradient --out runs/maps --limit 32

Writes heatmap/overlay PNGs, raw float16 maps, a metrics table (CSV + JSON) and a contact
sheet; prints the per-arm summary.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ml.explain.methods import METHODS

__all__ = ["add_parser", "main"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "saliency",
        help="compute, render and measure saliency maps of one or more checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        type=Path,
        metavar="PT",
        help="checkpoint file (repeat to compare models)",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="data set: folder with train/ and val/ class folders, or a labels CSV",
    )
    p.add_argument("--method", default="gradient", choices=METHODS)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--route",
        action="append",
        choices=("clean", "adv"),
        default=None,
        help="BN route for dual-BN checkpoints: once for all, or once per checkpoint "
        "(ignored for standard models; default clean)",
    )
    p.add_argument(
        "--target",
        default="predicted",
        help="predicted | ground_truth | class:<name> (default: predicted)",
    )
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--limit", type=int, default=None, help="first N cases of the split")
    p.add_argument(
        "--params",
        default=None,
        help='method parameters as JSON, e.g. \'{"samples": 32, "noise": 0.1}\'',
    )
    p.add_argument("--postprocess", default="clip_std", choices=("clip_std", "percentile"))
    p.add_argument(
        "--colormap", default="jet", choices=("jet", "inferno", "viridis", "hot", "gray")
    )
    p.add_argument("--opacity", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=os.environ.get("RADSAL_DEVICE", "auto"))
    p.add_argument(
        "--faithfulness-steps",
        type=int,
        default=16,
        help="steps of the deletion/insertion curves (0 = skip)",
    )
    p.add_argument(
        "--sanity-cases",
        type=int,
        default=8,
        help="cases for the model-randomisation check per arm (0 = skip)",
    )
    p.add_argument("--sheet-rows", type=int, default=6, help="rows of the contact sheet")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def _routes(args: argparse.Namespace) -> list[str | None]:
    given = args.route or []
    n = len(args.checkpoint)
    if len(given) not in (0, 1, n):
        raise ValueError(f"--route given {len(given)} times for {n} checkpoints (use 1 or {n})")
    return [None] * n if not given else (given * n if len(given) == 1 else list(given))


def _labels(paths: list[Path], routes: list[str | None]) -> list[str]:
    labels = []
    for path, route in zip(paths, routes, strict=True):
        base = path.stem + (f"-{route}" if route == "adv" else "")
        label, k = base, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.append(label)
    return labels


def main(args: argparse.Namespace) -> int:
    from ml.checkpoint import load_checkpoint
    from ml.cli.common import report_error
    from ml.device import resolve_device
    from ml.explain.cases import load_cases
    from ml.explain.compare import Arm, CompareConfig, run_comparison

    try:
        params: dict[str, Any] = json.loads(args.params) if args.params else {}
        if not isinstance(params, dict):
            raise ValueError("--params must be a JSON object")
        device = resolve_device(args.device)
        routes = _routes(args)
        loaded = [load_checkpoint(path) for path in args.checkpoint]
        used: list[str | None] = []
        for route, ckpt in zip(routes, loaded, strict=True):
            # A standard model has one BN: it is explained through it whatever --route says.
            used.append(route if ckpt.meta.get("dual_bn") else None)
        arms = [
            Arm(label, ckpt.model, ckpt.meta, ckpt.sha256, route)
            for label, ckpt, route in zip(_labels(args.checkpoint, used), loaded, used, strict=True)
        ]
        cases = load_cases(args.data, split=args.split, limit=args.limit)
        config = CompareConfig(
            method=args.method,
            params=params,
            target=args.target,
            postprocess=args.postprocess,
            colormap=args.colormap,
            opacity=args.opacity,
            batch_size=args.batch_size,
            device=device,
            faithfulness_steps=args.faithfulness_steps,
            sanity_cases=args.sanity_cases,
            sheet_rows=args.sheet_rows,
            progress=not args.no_progress,
        )
        report = run_comparison(arms, cases, args.out, config)
    except (ValueError, OSError) as exc:  # DatasetError / CheckpointError are ValueErrors
        return report_error("saliency", exc)
    _print_summary(report["summary"])
    print(f"wrote {args.out}/metrics.csv, metrics.json, summary.csv, contact_sheet.png")
    return 0


def _print_summary(summary: list[dict[str, Any]]) -> None:
    from ml.explain.compare import SUMMARY_METRICS

    cols = ["arm", "n", *SUMMARY_METRICS, "randomization_spearman"]
    cells = [[_fmt(row.get(c)) for c in cols] for row in summary]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
