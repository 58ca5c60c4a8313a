"""``radsal train``: standard, adversarial, dual-BN or fast adversarial training."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from ml.checkpoint import CheckpointError
from ml.cli.common import comma_list, float_list, report_error
from ml.data import AUGMENT_PRESETS, DatasetError, ImageLoadError
from ml.models import list_archs
from ml.training import TrainConfig, train
from ml.training.config import (
    MASK_SPLITS,
    MODES,
    NORMS,
    OPTIMIZERS,
    SCHEDULES,
    SELECT_METRICS,
    STAGES,
    config_defaults,
)
from ml.training.selection import format_history

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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout and appends each option's default (TrainConfig's) to its help;
    unset (None) and on/off defaults are left out, the help text says what they mean."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
            return text
        return text if "%(default)" in text else f"{text} (default: %(default)s)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """The ``train`` subcommand. Options name no defaults: ``set_defaults`` fills them all from
    ``config_defaults()`` (options are named after TrainConfig fields), so the CLI and the
    dataclass cannot drift apart."""
    p = subparsers.add_parser(
        "train",
        help="train a classifier (standard / adversarial / dual-BN / fast)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--data", required=True, help="folder with train/ val/ class folders, or a labels CSV"
    )
    p.add_argument(
        "--out", required=True, help="output directory (best.pt, last.pt, metrics.jsonl)"
    )
    p.add_argument("--mode", choices=MODES, help="training objective")
    p.add_argument("--arch", choices=list_archs(), help="model architecture")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--batch-size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="optimiser")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up before the schedule")
    p.add_argument("--image-size", type=int, help="model input size in pixels")
    p.add_argument("--in-channels", type=int, choices=(1, 3), help="input channels")
    p.add_argument("--augment", choices=sorted(AUGMENT_PRESETS), help="augmentation preset")
    p.add_argument(
        "--normalize-mean", type=float_list, default=None, help="per-channel mean inside the model"
    )
    p.add_argument(
        "--normalize-std", type=float_list, default=None, help="per-channel std inside the model"
    )
    g = p.add_argument_group("adversarial training")
    g.add_argument("--eps", type=float, help="attack radius in [0,1] pixel units")
    g.add_argument("--step-size", type=float, help="default 2.5*eps/steps (fast: 1.25*eps)")
    g.add_argument("--steps", type=int, help="attack iterations per training step")
    g.add_argument("--norm", choices=NORMS, help="attack norm")
    g.add_argument(
        "--no-random-start",
        dest="random_start",
        action="store_false",
        help="start the attack at the image, not at a random point of the ball",
    )
    g.add_argument(
        "--bn-momentum",
        type=float,
        help="dual-BN momentum (default 0.01 as in the paper; 0.1 for runs < 500 steps)",
    )
    f = p.add_argument_group("fine-tuning")
    f.add_argument("--init-from", help="checkpoint to start from (use a small --lr, e.g. 1e-5)")
    f.add_argument(
        "--init-route",
        choices=("clean", "adv"),
        help="BN branch of a dual-BN --init-from used for a single-BN model",
    )
    f.add_argument(
        "--freeze-through",
        choices=STAGES,
        help="keep the stem up to this stage fixed (robust first layers)",
    )
    f.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    d = p.add_argument_group("data and runtime")
    d.add_argument("--label-columns", type=comma_list, help="CSV label columns (multi-label)")
    d.add_argument(
        "--uncertainty", choices=("zeros", "ones", "ignore"), help="uncertain (-1) CSV labels"
    )
    d.add_argument("--val-fraction", type=float, help="CSV without split column: validation share")
    d.add_argument(
        "--test-fraction",
        type=float,
        help="CSV without split column: held-out test share (patient-disjoint, stratified)",
    )
    d.add_argument(
        "--mask-split",
        choices=MASK_SPLITS,
        help="held-out split for images with masks/boxes (auto: test if any, else val)",
    )
    d.add_argument(
        "--select-metric",
        choices=SELECT_METRICS,
        help="what picks best.pt: clean validation AUROC, or loss (the paper)",
    )
    d.add_argument("--label", help="the model's name in reports (default: the --out folder name)")
    d.add_argument("--seed", type=int, help="seed for splits, initialisation and order")
    d.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    d.add_argument("--workers", dest="num_workers", type=int, help="data-loader processes")
    d.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own)")
    d.add_argument(
        "--no-amp", dest="amp", action="store_false", help="disable bf16 autocast on CUDA"
    )
    d.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (smoke runs)")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    # Fields without an option (e.g. channels_last) get their default by the same route.
    p.set_defaults(func=main, **config_defaults())
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Options whose destination is a TrainConfig field pass through by name; only the two
    normalisation options, which form one field, need mapping."""
    normalize = None
    if args.normalize_mean is not None or args.normalize_std is not None:
        if args.normalize_mean is None or args.normalize_std is None:
            raise ValueError("--normalize-mean and --normalize-std go together")
        normalize = {"mean": args.normalize_mean, "std": args.normalize_std}
    given = vars(args)
    values = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    return TrainConfig(**{**values, "normalize": normalize})


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        result = train(cfg, progress=args.progress)
    except (ValueError, DatasetError, ImageLoadError, CheckpointError) as exc:
        return report_error("train", exc)
    # The per-epoch table and the selection verdict go to stderr: stdout stays one JSON object.
    print(format_history(result.history, result.selection.get("epoch")), file=sys.stderr)
    selected = result.selection.get("epoch")
    print(
        f"best.pt: epoch {selected} by {result.selection.get('metric')}"
        + "".join(f"\nWARNING: {w}" for w in result.selection.get("warnings", [])),
        file=sys.stderr,
    )
    final = {k: v for k, v in result.final_metrics.items() if not isinstance(v, list)}
    print(
        json.dumps(
            {
                "best": str(result.best_path),
                "last": str(result.last_path),
                "best_metric": result.best_metric,
                "selected_epoch": selected,
                "warnings": result.selection.get("warnings", []),
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
