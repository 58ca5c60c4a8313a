"""Cost of one training step: standard vs adversarial (PGD-k) vs dual-BN (PGD-k), one run.

Prints images/s and seconds per step for each mode and the ratio to the standard step next to
the theoretical cost in forward+backward passes (standard 1, adversarial k+1, dual k+2: the
attack's k passes plus one or two training passes). Attack passes compute input gradients
only, so measured ratios should come in *below* theory; the target is dual ≤ 1.1 × (k+2).

    .venv/bin/python bench/train_step.py --arch resnet_tiny --image-size 64 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ml.device import resolve_device
from ml.models import create_model
from ml.training import TrainConfig, training_step


def _time_mode(mode: str, args: argparse.Namespace, device: torch.device) -> list[float]:
    torch.manual_seed(0)
    model = create_model(args.arch, args.num_classes, 1, dual_bn=mode == "dual").to(device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    cfg = TrainConfig(
        data="-",
        out="-",
        mode=mode,
        eps=args.eps,
        steps=args.steps,
        step_size=2.5 * args.eps / args.steps,
    )
    x = torch.rand(args.batch_size, 1, args.image_size, args.image_size, device=device)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    amp = torch.bfloat16 if device.type == "cuda" else None
    times = []
    for i in range(args.warmup + args.iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = training_step(model, x, y, cfg, multilabel=False, amp_dtype=amp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="resnet_tiny")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="PGD steps k")
    p.add_argument("--eps", type=float, default=0.01)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    k = args.steps
    theory = {"standard": 1, "adversarial": k + 1, "dual": k + 2}
    # Interleave modes round-robin so background load affects them alike.
    results: dict[str, list[float]] = {m: [] for m in theory}
    rounds = 3
    per_round = argparse.Namespace(**{**vars(args), "iters": max(1, args.iters // rounds)})
    for _ in range(rounds):
        for mode in theory:
            results[mode] += _time_mode(mode, per_round, device)
    base = statistics.median(results["standard"])
    print(
        f"# {args.arch} {args.image_size}px batch {args.batch_size}, PGD-{k}, device {device}, "
        f"threads {torch.get_num_threads()}, {len(results['standard'])} timed steps/mode (median)"
    )
    print(f"{'mode':<12}{'s/step':>10}{'img/s':>10}{'ratio':>8}{'theory':>8}{'ratio/theory':>14}")
    for mode, ts in results.items():
        med = statistics.median(ts)
        ratio = med / base
        print(
            f"{mode:<12}{med:>10.4f}{args.batch_size / med:>10.1f}{ratio:>8.2f}{theory[mode]:>8d}"
            f"{ratio / theory[mode]:>14.2f}"
        )
    dual_ok = statistics.median(results["dual"]) / base <= 1.1 * theory["dual"]
    print(f"target dual <= 1.1 x theory: {'met' if dual_ok else 'NOT met'}")


if __name__ == "__main__":
    main()
