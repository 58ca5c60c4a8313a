"""``radsal import-checkpoint``: turn a seed-code state dict into a radsal/1 checkpoint."""

from __future__ import annotations

import argparse
import json

from ml.checkpoint import CheckpointError, import_checkpoint
from ml.cli.common import comma_list, report_error
from ml.models import list_archs

__all__ = ["add_parser", "main"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "import-checkpoint",
        help="convert a seed (Medical-Robust-Training) or torchvision state dict to radsal/1",
        description=__doc__ + "\n\nDual-BN layouts (<layer>.bns.0/1.*) and DataParallel 'module.' "
        "prefixes are recognised; the file is read with weights_only=True.",
    )
    p.add_argument("src", help="state dict (.pth/.pt)")
    p.add_argument(
        "--arch", choices=list_archs(), default=None, help="default: inferred from the weights"
    )
    p.add_argument("--num-classes", type=int, default=None, help="default: from fc.weight")
    p.add_argument("--class-names", type=comma_list, default=None)
    p.add_argument("--image-size", type=int, default=None, help="default 256 (dual BN) / 224")
    p.add_argument("--in-channels", type=int, choices=(1, 3), default=None)
    p.add_argument("-o", "--out", required=True, help="radsal/1 checkpoint to write")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    try:
        digest, meta = import_checkpoint(
            args.src,
            args.out,
            arch=args.arch,
            num_classes=args.num_classes,
            class_names=args.class_names,
            image_size=args.image_size,
            in_channels=args.in_channels,
        )
    except (CheckpointError, ValueError) as exc:
        return report_error("import-checkpoint", exc)
    print(json.dumps({"out": args.out, "sha256": digest, **meta}, indent=2, default=str))
    return 0
