"""``radsal train``: standard, adversarial, dual-BN or fast adversarial training."""

from __future__ import annotations

import argparse
import json
import sys

from ml.checkpoint import CheckpointError
from ml.cli.common import comma_list, float_list, report_error
from ml.data import AUGMENT_PRESETS, DatasetError, ImageLoadError
from ml.models import list_archs
from ml.training import MODES, STAGES, TrainConfig, train

__all__ = ["add_parser", "config_from_args", "main"]

_EPILOG = """examples:
  radsal train --data data/synth --mode standard --arch resnet_tiny --image-size 64 \\
      --epochs 5 --out runs/std
  radsal train --data data/synth --mode dual --arch resnet_tiny --image-size 64 --epochs 5 \\
      --eps 0.01 --step-size 0.004 --steps 3 --out runs/dual
  paper (Han et al.): --arch resnet50 --image-size 256 --mode dual --norm linf --eps 0.005
      --step-size 0.0025 --steps 10 --bn-momentum 0.01
  multi-GPU: torchrun --nproc-per-node 8 -m app.cli.main train ...
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "train",
        help="train a classifier (standard / adversarial / dual-BN / fast)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, help="folder with train/ val/ class folders, or a labels CSV"
    )
    p.add_argument(
        "--out", required=True, help="output directory (best.pt, last.pt, metrics.jsonl)"
    )
    p.add_argument("--mode", choices=MODES, default="standard")
    p.add_argument("--arch", choices=list_archs(), default="resnet18")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine")
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--in-channels", type=int, choices=(1, 3), default=1)
    p.add_argument("--augment", choices=sorted(AUGMENT_PRESETS), default="light")
    p.add_argument(
        "--normalize-mean", type=float_list, default=None, help="per-channel mean inside the model"
    )
    p.add_argument(
        "--normalize-std", type=float_list, default=None, help="per-channel std inside the model"
    )
    g = p.add_argument_group("adversarial training")
    g.add_argument("--eps", type=float, default=0.005, help="attack radius in [0,1] pixel units")
    g.add_argument(
        "--step-size", type=float, default=None, help="default 2.5*eps/steps (fast: 1.25*eps)"
    )
    g.add_argument("--steps", type=int, default=10)
    g.add_argument("--norm", choices=("linf", "l2"), default="linf")
    g.add_argument("--no-random-start", dest="random_start", action="store_false")
    g.add_argument(
        "--bn-momentum",
        type=float,
        default=None,
        help="dual-BN momentum (default 0.01 as in the paper; 0.1 for runs < 500 steps)",
    )
    f = p.add_argument_group("fine-tuning")
    f.add_argument(
        "--init-from", default=None, help="checkpoint to start from (use a small --lr, e.g. 1e-5)"
    )
    f.add_argument(
        "--init-route",
        choices=("clean", "adv"),
        default=None,
        help="BN branch of a dual-BN --init-from used for a single-BN model",
    )
    f.add_argument(
        "--freeze-through",
        choices=STAGES,
        default=None,
        help="keep the stem up to this stage fixed (robust first layers)",
    )
    f.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    d = p.add_argument_group("data and runtime")
    d.add_argument(
        "--label-columns", type=comma_list, default=None, help="CSV label columns (multi-label)"
    )
    d.add_argument("--uncertainty", choices=("zeros", "ones", "ignore"), default="zeros")
    d.add_argument("--val-fraction", type=float, default=0.2, help="CSV without split column")
    d.add_argument("--select-metric", choices=("loss", "auroc"), default="loss")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="auto")
    d.add_argument("--workers", dest="num_workers", type=int, default=0)
    d.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    d.add_argument(
        "--no-amp", dest="amp", action="store_false", help="disable bf16 autocast on CUDA"
    )
    d.add_argument("--max-steps-per-epoch", type=int, default=None)
    d.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=main)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    normalize = None
    if args.normalize_mean is not None or args.normalize_std is not None:
        if args.normalize_mean is None or args.normalize_std is None:
            raise ValueError("--normalize-mean and --normalize-std go together")
        normalize = {"mean": args.normalize_mean, "std": args.normalize_std}
    return TrainConfig(
        data=args.data,
        out=args.out,
        mode=args.mode,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        image_size=args.image_size,
        in_channels=args.in_channels,
        augment=args.augment,
        normalize=normalize,
        eps=args.eps,
        step_size=args.step_size,
        steps=args.steps,
        norm=args.norm,
        random_start=args.random_start,
        bn_momentum=args.bn_momentum,
        seed=args.seed,
        device=args.device,
        num_workers=args.num_workers,
        threads=args.threads,
        amp=args.amp,
        select_metric=args.select_metric,
        init_from=args.init_from,
        init_route=args.init_route,
        freeze_through=args.freeze_through,
        resume=args.resume,
        uncertainty=args.uncertainty,
        label_columns=args.label_columns,
        val_fraction=args.val_fraction,
        max_steps_per_epoch=args.max_steps_per_epoch,
    )


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        result = train(cfg, progress=args.progress)
    except (ValueError, DatasetError, ImageLoadError, CheckpointError) as exc:
        return report_error("train", exc)
    final = {k: v for k, v in result.final_metrics.items() if not isinstance(v, list)}
    print(
        json.dumps(
            {
                "best": str(result.best_path),
                "last": str(result.last_path),
                "best_metric": result.best_metric,
                "final": final,
            },
            indent=2,
        )
    )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # ``torchrun -m ml.cli.train ...`` without the app installed
    _parser = argparse.ArgumentParser(prog="radsal")
    _args = add_parser(_parser.add_subparsers(dest="command")).parse_args()
    raise SystemExit(main(_args))
