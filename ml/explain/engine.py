"""Batched, memory-bounded saliency computation: the one entry point the study job calls.

A study computes thousands of maps (arm × image × target). They are computed in chunks: one
forward/backward per chunk for single-pass methods, bounded internal batches for SmoothGrad,
Integrated Gradients and occlusion. The chunk size comes from the free memory of the device
and a one-off measurement of the model's activation size, so a large study never runs out of
memory, and it can be capped with ``max_batch``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ml.explain.methods import SINGLE_PASS, TargetHead, attribute, method_params
from ml.explain.targets import parse_target, resolve_targets

__all__ = ["SaliencyResult", "auto_chunk_size", "compute_saliency", "find_gradcam_layer"]

# Never exceed this many images in one pass on CPU: beyond it throughput no longer improves
# and memory grows linearly.
_CPU_MAX_CHUNK = 64
_GPU_MAX_CHUNK = 512


@dataclass
class SaliencyResult:
    """Maps and everything needed to interpret and store them.

    ``maps`` are raw (N×S×S float32, CPU): non-negative magnitudes for gradient-type methods,
    ReLU'd upsampled Grad-CAM. ``targets[i]`` lists the class indices whose logits were summed
    for case ``i``; ``target_sources[i]`` says how they were chosen ("predicted",
    "ground_truth", "class" or "predicted_fallback" for a ground-truth case with no positives).
    """

    maps: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor
    targets: list[list[int]]
    target_names: list[str]
    target_sources: list[str] = field(default_factory=list)
    method: str = "gradient"
    params: dict[str, Any] = field(default_factory=dict)
    route: str | None = None
    compute_ms: float = 0.0

    def __len__(self) -> int:
        return int(self.maps.shape[0])


def find_gradcam_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage: ``ml.models.gradcam_layer`` when it knows the model."""
    try:
        from ml.models import gradcam_layer  # the model zoo knows its own stages

        return gradcam_layer(model)
    except (ImportError, AttributeError, ValueError, KeyError, TypeError):
        pass
    if isinstance(getattr(model, "layer4", None), nn.Module):
        return model.layer4  # type: ignore[return-value]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional layer; the model has none")
    return convs[-1]


def _model_in_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        return int(pages * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # non-Linux: assume a modest 2 GiB
        return 2 << 30


_ACT_CACHE: dict[tuple[int, int, tuple[int, ...], str], int] = {}


def _activation_bytes_per_image(
    model: nn.Module, shape: tuple[int, ...], device: torch.device
) -> int:
    """Bytes of module outputs for one image: what backward must keep alive (measured once)."""
    n_params = sum(p.numel() for p in model.parameters())
    key = (id(model), n_params, shape, str(device))
    if key in _ACT_CACHE:
        return _ACT_CACHE[key]
    total = 0

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device))
    finally:
        for h in handles:
            h.remove()
    # Inputs, their gradient, and autograd's saved tensors roughly double the forward outputs.
    per_image = max(1, 2 * total + 4 * int(torch.tensor(shape).prod()))
    _ACT_CACHE[key] = per_image
    return per_image


def auto_chunk_size(
    model: nn.Module, shape: tuple[int, ...], device: torch.device, fraction: float = 0.4
) -> int:
    """Images per forward/backward that fit in ``fraction`` of the free device memory."""
    per_image = _activation_bytes_per_image(model, shape, device)
    cap = _GPU_MAX_CHUNK if device.type == "cuda" else _CPU_MAX_CHUNK
    return max(1, min(cap, int(_free_bytes(device) * fraction) // per_image))


def _validate(model: nn.Module, inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs)
        raise ValueError(f"inputs must be an N×C×H×W tensor, got {shape}")
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0); nothing to explain")
    expected = _model_in_channels(model)
    if expected is not None and inputs.shape[1] != expected:
        raise ValueError(
            f"inputs have {inputs.shape[1]} channel(s) but the model expects {expected}"
        )
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be floating point in [0, 1], got {inputs.dtype}")
    lo, hi = float(inputs.min()), float(inputs.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"inputs must lie in [0, 1] (got range [{lo:.3g}, {hi:.3g}])")


def compute_saliency(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str = "gradient",
    target: str = "predicted",
    labels: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    route: str | None = None,
    params: Mapping[str, Any] | None = None,
    device: torch.device | None = None,
    max_batch: int | None = None,
    multilabel: bool = False,
) -> SaliencyResult:
    """Saliency maps for a batch of model inputs (N×C×S×S in [0, 1]).

    The model is switched to eval mode for the computation (BN running statistics cannot
    move) and its previous mode restored afterwards; ``route`` selects the clean/adversarial
    BN of a dual-BN model. With ``device`` given the model is moved there (and stays).
    """
    merged = method_params(method, params)
    _validate(model, inputs)
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    dev = device if device is not None else _model_device(model)
    if next(model.parameters(), None) is not None:
        model.to(dev)
    n = inputs.shape[0]

    was_training = model.training
    model.eval()
    try:
        with _route_ctx(model, route):
            probe = _probe_logits(model, inputs[:1].to(dev))
            num_classes = probe.shape[1]
            spec = parse_target(target, class_names, num_classes)
            weights, use_pred = resolve_targets(spec, n, num_classes, labels, torch.device("cpu"))
            if method == "gradcam" and "layer" not in merged:
                merged["layer"] = find_gradcam_layer(model)
            budget = max_batch or auto_chunk_size(model, tuple(inputs.shape[1:]), dev)
            head = TargetHead(model)
            maps, logits, used = [], [], []
            start = time.perf_counter()
            for lo in range(0, n, budget):
                x = inputs[lo : lo + budget].detach().to(dev, torch.float32)
                w, p = weights[lo : lo + budget].to(dev), use_pred[lo : lo + budget].to(dev)
                if method not in SINGLE_PASS:
                    # Multi-pass methods perturb the input, so fix the target on the clean
                    # image first (one extra forward per chunk).
                    with torch.no_grad():
                        chunk_logits = model(x)
                    top = nn.functional.one_hot(chunk_logits.argmax(1), num_classes).float()
                    w = torch.where(p[:, None], top, w)
                    p = torch.zeros_like(p)
                if method in SINGLE_PASS:
                    x.requires_grad_()  # Captum would do it, with a warning per call
                m = attribute(method, head, x, w, p, budget=budget, params=merged)
                if method in SINGLE_PASS:
                    assert head.last_logits is not None and head.last_weights is not None
                    chunk_logits, w = head.last_logits, head.last_weights
                maps.append(m.detach().float().cpu())
                logits.append(chunk_logits.detach().float().cpu())
                used.append(w.detach().cpu())
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            compute_ms = (time.perf_counter() - start) * 1000.0
    finally:
        model.train(was_training)

    all_logits = torch.cat(logits)
    all_w = torch.cat(used)
    targets = [torch.nonzero(row).flatten().tolist() for row in all_w]
    names = list(class_names) if class_names is not None else None
    sources = _sources(spec.kind, use_pred)
    merged.pop("layer", None)
    return SaliencyResult(
        maps=torch.cat(maps),
        logits=all_logits,
        probs=torch.sigmoid(all_logits) if multilabel else all_logits.softmax(dim=1),
        targets=targets,
        target_names=["+".join(names[i] if names else str(i) for i in t) for t in targets],
        target_sources=sources,
        method=method,
        params=merged,
        route=route,
        compute_ms=compute_ms,
    )


def _sources(kind: str, use_pred: torch.Tensor) -> list[str]:
    if kind == "ground_truth":
        return ["predicted_fallback" if bool(f) else "ground_truth" for f in use_pred]
    return [kind] * int(use_pred.shape[0])


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _route_ctx(model: nn.Module, route: str | None) -> Any:
    if route is None:
        return nullcontext()
    from ml.models.dual_bn import bn_route

    return bn_route(model, route)


def _probe_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x.float())
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ValueError("model must return an N×K tensor of logits")
    return out
