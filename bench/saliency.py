"""Saliency pipeline throughput, measured side by side in one run.

Three ways to get the same gradient maps for the same batch, as maps per second:

* ``raw``      — the model's own forward + backward to the input (top logit), nothing else:
                 the ceiling for any gradient-saliency pipeline;
* ``pipeline`` — radsal's end to end: ``compute_saliency`` (batched Captum) + ``postprocess``
                 + ``map_fields`` + ``field_npy`` (the fixed-size uint8 map field raters'
                 browsers colour; no PNG is encoded on the rater path) for display-size images;
* ``naive``    — a per-image Captum loop (predict, ``Saliency.attribute``, post-process,
                 PNG), the way a notebook would do it.

Rounds are interleaved and the median is reported, so load from other processes affects all
three alike. Example: ``python bench/saliency.py --arch resnet18 --image-size 128``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from captum.attr import Saliency

from ml.data import Letterbox
from ml.explain import compute_saliency, postprocess, render_heatmap_png
from ml.explain.field import field_npy, map_fields
from ml.models import create_model


def _raw(model: torch.nn.Module, x: torch.Tensor) -> None:
    xi = x.clone().requires_grad_()
    logits = model(xi)
    top = logits.gather(1, logits.argmax(1, keepdim=True).detach())
    (g,) = torch.autograd.grad(top.sum(), xi)
    g.abs().amax(1)


def _pipeline(model: torch.nn.Module, x: torch.Tensor, display: tuple[int, int]) -> None:
    res = compute_saliency(model, x, method="gradient", max_batch=x.shape[0])
    h, w = display
    box = Letterbox(h, w, max(h, w), (max(h, w) - h) // 2, (max(h, w) - w) // 2, x.shape[-1])
    for field in map_fields(postprocess(res.maps), [box] * x.shape[0]):
        field_npy(field)


def _naive(model: torch.nn.Module, x: torch.Tensor, display: tuple[int, int]) -> None:
    sal = Saliency(model)
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_()
        with torch.no_grad():
            pred = int(model(xi).argmax(1))
        m = sal.attribute(xi, target=pred, abs=True).amax(1)
        render_heatmap_png(postprocess(m)[0].numpy(), size=display)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--display", type=int, default=256, help="display (PNG) side in pixels")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = create_model(a.arch, num_classes=2, in_channels=1).eval()
    x = torch.rand(a.batch, 1, a.image_size, a.image_size)
    disp = (a.display, a.display)
    runs: dict[str, Callable[[], None]] = {
        "raw": lambda: _raw(model, x),
        "pipeline": lambda: _pipeline(model, x, disp),
        "naive": lambda: _naive(model, x, disp),
    }
    for fn in runs.values():  # warm-up (allocator, LUTs, Captum imports)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rate = {k: a.batch / statistics.median(v) for k, v in times.items()}
    print(
        f"arch={a.arch} input={a.image_size}px display={a.display}px batch={a.batch} "
        f"threads={torch.get_num_threads()} rounds={a.rounds} (median)"
    )
    print(f"{'variant':<10}{'maps/s':>10}")
    for k, v in rate.items():
        print(f"{k:<10}{v:>10.1f}")
    print(
        f"pipeline / raw forward+backward = {rate['pipeline'] / rate['raw']:.2f}  (target >= 0.9)"
    )
    print(f"pipeline / naive per-image loop = {rate['pipeline'] / rate['naive']:.2f}x speed-up")


if __name__ == "__main__":
    main()
