"""``radsal saliency``: compare checkpoints' saliency maps on a data set.

Example::

    radsal saliency --checkpoint standard.pt --checkpoint dualbn.pt --route adv \\
        --data data/lesions --method gradient --out runs/maps --limit 32

Writes heatmap/overlay PNGs, raw float16 maps, a metrics table (CSV + JSON) and a contact
sheet; prints the per-arm summary. The maps come from the same pipeline as a study's
generation job (``ml.explain.pipeline``): same checkpoint, images and settings, same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ml.explain.choices import COLORMAPS, METHODS, POSTPROCESS_MODES

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
    p.add_argument(
        "--split",
        default=None,
        choices=("train", "val", "test"),
        help="default: the held-out split the (first) checkpoint names (test if training made one)",
    )
    p.add_argument(
        "--label",
        action="append",
        default=None,
        help="name of each checkpoint's arm, once per --checkpoint "
        "(default: the label the checkpoint records, else its folder or file name)",
    )
    p.add_argument("--limit", type=int, default=None, help="first N cases of the split")
    p.add_argument(
        "--params",
        default=None,
        help='method parameters as JSON, e.g. \'{"samples": 32, "noise": 0.1}\'',
    )
    p.add_argument("--postprocess", default="clip_std", choices=POSTPROCESS_MODES)
    p.add_argument(
        "--postprocess-params",
        default=None,
        help="post-processing parameters as JSON, e.g. '{\"k\": 2.5}' (clip_std) or "
        '\'{"low": 1, "high": 99}\' (percentile)',
    )
    p.add_argument("--colormap", default="jet", choices=COLORMAPS)
    p.add_argument("--opacity", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=os.environ.get("RADSAL_DEVICE", "auto"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--bootstrap", type=int, default=2000, help="case-bootstrap resamples for the CIs"
    )
    p.add_argument(
        "--no-nulls",
        dest="nulls",
        action="store_false",
        help="skip the randomised-weights and untrained null models (shuffled masks stay)",
    )
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


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return value


def _routes(args: argparse.Namespace) -> list[str | None]:
    given = args.route or []
    n = len(args.checkpoint)
    if len(given) not in (0, 1, n):
        raise ValueError(f"--route given {len(given)} times for {n} checkpoints (use 1 or {n})")
    return [None] * n if not given else (given * n if len(given) == 1 else list(given))


def _labels(
    paths: list[Path],
    routes: list[str | None],
    metas: list[dict[str, Any]],
    given: list[str] | None = None,
) -> list[str]:
    """One arm name per checkpoint: ``--label``, else the label training recorded, else the
    folder of a ``best.pt``/``last.pt`` (runs/nih-std/best.pt → nih-std), else the file name."""
    if given is not None and len(given) != len(paths):
        raise ValueError(f"--label given {len(given)} times for {len(paths)} checkpoints")
    labels: list[str] = []
    for i, (path, route, meta) in enumerate(zip(paths, routes, metas, strict=True)):
        recorded = (meta.get("train") or {}).get("label")
        generic = path.stem in ("best", "last") and path.parent.name not in ("", ".")
        if given:
            base = given[i].replace("/", "-")  # the caller's name, exactly
        else:
            name = recorded or (path.parent.name if generic else path.stem)
            base = str(name).replace("/", "-") + (f"-{route}" if route == "adv" else "")
        label, k = base, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.append(label)
    return labels


def main(args: argparse.Namespace) -> int:
    from ml.checkpoint import load_checkpoint
    from ml.cli.common import report_error
    from ml.device import resolve_device
    from ml.evaluation.map_compare import compare_with_statistics
    from ml.explain.cases import heldout_cases
    from ml.explain.compare import Arm, CompareConfig

    try:
        params = _json_object(args.params, "--params")
        pp_params = _json_object(args.postprocess_params, "--postprocess-params")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        routes = _routes(args)
        loaded = [load_checkpoint(path) for path in args.checkpoint]
        used: list[str | None] = []
        for route, ckpt in zip(routes, loaded, strict=True):
            # A standard model has one BN: it is explained through it whatever --route says.
            used.append(route if ckpt.meta.get("dual_bn") else None)
        names = _labels(args.checkpoint, used, [c.meta for c in loaded], args.label)
        arms = [
            Arm(label, ckpt.model, ckpt.meta, ckpt.sha256, route)
            for label, ckpt, route in zip(names, loaded, used, strict=True)
        ]
        # The first checkpoint's split; by default its held-out one.
        split, cases = heldout_cases(args.data, loaded[0].meta, split=args.split, limit=args.limit)
        config = CompareConfig(
            method=args.method,
            params=params,
            target=args.target,
            postprocess=args.postprocess,
            postprocess_params=pp_params,
            colormap=args.colormap,
            opacity=args.opacity,
            batch_size=args.batch_size,
            device=device,
            faithfulness_steps=args.faithfulness_steps,
            sanity_cases=args.sanity_cases,
            sheet_rows=args.sheet_rows,
            progress=not args.no_progress,
        )
        report = compare_with_statistics(
            arms, cases, args.out, config, nulls=args.nulls, n_bootstrap=args.bootstrap
        )
    except (ValueError, OSError) as exc:  # DatasetError / CheckpointError are ValueErrors
        return report_error("saliency", exc)
    print(f"split {split}: {len(cases.cases)} cases")
    _print_summary(report["summary"])
    _print_statistics(report["statistics"])
    print(
        f"wrote {args.out}/metrics.csv, metrics.json, summary.csv, statistics.json, "
        "statistics.csv, contact_sheet.png"
    )
    return 0


def _print_statistics(stats: dict[str, Any]) -> None:
    """Mask metrics per arm with CIs, each real arm against its nulls, and the notes."""
    shown = [m for m in ("mask_energy", "pointing", "gini") if m in stats["metrics"]]
    print(f"\nmeans with case-bootstrap 95% CIs (mask area = {_fmt(stats['mask_area_mean'])})")
    for arm in stats["arms"]:
        cells = []
        for m in shown:
            v = arm["metrics"].get(m) or {}
            cells.append(
                f"{m} {_fmt(v.get('mean'))} [{_fmt(v.get('ci_low'))}, {_fmt(v.get('ci_high'))}]"
            )
        print(f"  {arm['arm']:<34} " + "  ".join(cells))
    print("paired differences (b - a) [95% CI], Wilcoxon p:")
    for p in stats["paired"]:
        if p["metric"] in shown[:2]:
            print(
                f"  {p['b']} - {p['a']}: {p['metric']} {_fmt(p['mean_diff'])} "
                f"[{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}] p={_fmt(p['wilcoxon_p'])} n={p['n']}"
            )
    for note in stats["notes"]:
        print(f"WARNING: {note}", file=sys.stderr)


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
