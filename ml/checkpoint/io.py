"""Save and load radsal/1 checkpoints — safely.

Writing is atomic (temporary file in the target directory, fsync, ``os.replace``) so a crash
never leaves a half-written ``best.pt``. Reading uses ``torch.load(weights_only=True)`` and
nothing else: a pickle that needs code to unpickle is refused with a clear message and never
executed. Every accepted checkpoint is rebuilt and run once on a dummy input.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ml.checkpoint.errors import CheckpointError
from ml.checkpoint.layouts import classifier_shape, extract_state_dict, infer_arch, strip_prefixes
from ml.models import bn_route, create_model, is_dual_bn, list_archs, unwrap

__all__ = [
    "FORMAT",
    "LoadedCheckpoint",
    "load_checkpoint",
    "read_checkpoint_dict",
    "save_checkpoint",
]

FORMAT = "radsal/1"
_META_KEYS = (
    "format",
    "arch",
    "dual_bn",
    "num_classes",
    "class_names",
    "in_channels",
    "image_size",
    "normalize",
    "train",
)
# Dummy forward size cap: enough to exercise every stage, cheap on CPU for big archs.
_DUMMY_MAX = 224
# Bounds on what a checkpoint may declare, checked before anything is built: generation
# allocates image_size² × in_channels per input and num_classes maps per image, so an absurd
# value (image_size 100000) must be refused at upload, not discovered by a worker running out
# of memory.
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 2048
MAX_CLASSES = 1000
MAX_CLASS_NAME = 200


@dataclass
class LoadedCheckpoint:
    """A verified model plus everything known about it."""

    model: nn.Module
    meta: dict[str, Any]
    sha256: str
    source_format: str  # "radsal/1" | "seed-dual-bn" | "torchvision"
    extra: dict[str, Any] = field(default_factory=dict)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    num_classes: int,
    class_names: list[str],
    in_channels: int,
    image_size: int,
    normalize: dict[str, list[float]] | None,
    dual_bn: bool,
    train: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a radsal/1 checkpoint atomically and return the file's sha256 (hex).

    ``extra`` holds anything else that must survive (e.g. ``{"resume": {...}}`` with optimizer,
    scheduler and RNG state); it must itself be weights-only loadable (tensors, numbers,
    strings, lists, dicts).
    """
    if len(class_names) != num_classes:
        raise CheckpointError(f"{len(class_names)} class names given for {num_classes} classes")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "arch": arch,
        "dual_bn": bool(dual_bn),
        "num_classes": int(num_classes),
        "class_names": [str(c) for c in class_names],
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "normalize": normalize,
        "train": dict(train),
        "state_dict": _to_cpu(unwrap(model).state_dict()),
    }
    if extra:
        payload["extra"] = _to_cpu(extra)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    _atomic_write(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def _read_bytes(source: str | Path | bytes | BinaryIO) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        return bytes(source), "<bytes>"
    if isinstance(source, str | Path):
        p = Path(source)
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p}")
        return p.read_bytes(), str(p)
    data = source.read()
    return data, getattr(source, "name", "<stream>")


def read_checkpoint_dict(
    source: str | Path | bytes | BinaryIO, map_location: Any = "cpu"
) -> tuple[Any, str, str]:
    """``torch.load(..., weights_only=True)`` with refusals translated to CheckpointError.

    Returns (object, sha256, display name). Used for resuming, where the raw dict is needed.
    """
    data, name = _read_bytes(source)
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        raise CheckpointError(f"{name}: file is empty")
    try:
        obj = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        needs_code = re.search(
            r"(unsupported|blocked).{0,40}global|global.{0,80}blocked", text, re.I | re.S
        )
        if needs_code:
            detail = next((ln.strip() for ln in text.splitlines() if "GLOBAL" in ln.upper()), "")
            raise CheckpointError(
                f"{name}: refused — the file is a pickle that needs code to load (it references "
                "Python objects other than tensors and plain containers). radsal only loads "
                "weights (torch.load weights_only=True) and never executes such files; "
                "re-save the model as a state dict (torch.save(model.state_dict(), path))."
                + (f" Detail: {detail[:200]}" if detail else "")
            ) from None
        raise CheckpointError(
            f"{name}: not a PyTorch checkpoint or the file is corrupt/truncated"
        ) from None
    except Exception as exc:  # any other failure inside torch.load means unreadable bytes
        raise CheckpointError(
            f"{name}: not a PyTorch checkpoint or the file is corrupt/truncated "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return obj, digest, name


def _fit_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Load ``sd`` strictly, with an error that names the first offending keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k} (file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)})"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise CheckpointError(f"state dict does not fit {what}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=False)


def _dummy_forward(model: nn.Module, meta: dict[str, Any]) -> None:
    size = max(32, min(int(meta["image_size"]), _DUMMY_MAX))
    x = torch.rand(
        1, int(meta["in_channels"]), size, size, generator=torch.Generator().manual_seed(0)
    )
    routes = ["clean", "adv"] if meta["dual_bn"] else ["clean"]
    try:
        with torch.no_grad():
            for route in routes:
                with bn_route(model, route):
                    out = model(x)
                if out.shape != (1, meta["num_classes"]):
                    raise CheckpointError(
                        f"dummy forward gave shape {tuple(out.shape)}, "
                        f"expected (1, {meta['num_classes']})"
                    )
                if not torch.isfinite(out).all():
                    raise CheckpointError(f"dummy forward through the {route} route gave NaN/inf")
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"dummy forward pass failed: {type(exc).__name__}: {exc}") from None


def _validate_meta(meta: dict[str, Any]) -> None:
    if meta["arch"] not in list_archs():
        raise CheckpointError(
            f"unknown architecture {meta['arch']!r}; available: {', '.join(list_archs())}"
        )
    names = meta.get("class_names")
    if not isinstance(names, list) or len(names) != meta["num_classes"]:
        count = len(names) if isinstance(names, list) else "no"
        raise CheckpointError(
            f"{count} class names for {meta['num_classes']} classes; give one name per output"
        )
    for key, low, high in (
        ("num_classes", 1, MAX_CLASSES),
        ("in_channels", 1, 3),
        ("image_size", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    ):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CheckpointError(
                f"{key} must be a whole number from {low} to {high}, got {value!r}"
            )
    if meta["in_channels"] not in (1, 3):
        raise CheckpointError(f"in_channels must be 1 or 3, got {meta['in_channels']}")
    if any(not isinstance(n, str) or len(n) > MAX_CLASS_NAME for n in names):
        raise CheckpointError(f"class names must be text of at most {MAX_CLASS_NAME} characters")


def load_checkpoint(
    source: str | Path | bytes | BinaryIO,
    map_location: Any = "cpu",
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    image_size: int | None = None,
    in_channels: int | None = None,
) -> LoadedCheckpoint:
    """Load, rebuild and verify a checkpoint (radsal/1 or one of the seed layouts).

    Keyword hints fill in what a seed state dict lacks; what can be read from the weights
    (dual BN, classes, channels, architecture) is inferred, and a hint that contradicts the
    weights is reported rather than silently trusted.
    """
    obj, digest, name = read_checkpoint_dict(source, map_location="cpu")
    extra: dict[str, Any] = {}
    if isinstance(obj, dict) and "format" in obj:
        if obj["format"] != FORMAT:
            raise CheckpointError(f"{name}: unsupported checkpoint format {obj['format']!r}")
        missing = [k for k in (*_META_KEYS, "state_dict") if k not in obj]
        if missing:
            raise CheckpointError(f"{name}: radsal/1 checkpoint lacks {', '.join(missing)}")
        meta = {k: obj[k] for k in _META_KEYS}
        extra = dict(obj.get("extra") or {})
        sd = extract_state_dict(obj["state_dict"])
        source_format = FORMAT
    else:
        raw = strip_prefixes(extract_state_dict(obj))
        if any(k.startswith("backbone.") for k in raw):
            raw = {
                k.removeprefix("backbone."): v
                for k, v in raw.items()
                if not k.startswith("normalize.")
            }
        dual = any(".bns.0." in k for k in raw)
        fc_classes, stem_channels = classifier_shape(raw)
        inferred_arch = infer_arch(raw)
        if arch is None and inferred_arch is None:
            raise CheckpointError(
                f"{name}: cannot infer the architecture from the weights; pass arch= "
                f"(one of {', '.join(list_archs())})"
            )
        if num_classes is not None and fc_classes is not None and num_classes != fc_classes:
            raise CheckpointError(
                f"{name}: num_classes={num_classes} given but the classifier has "
                f"{fc_classes} outputs"
            )
        n = num_classes or fc_classes
        if n is None:
            raise CheckpointError(f"{name}: cannot infer the number of classes; pass num_classes=")
        meta = {
            "format": FORMAT,
            "arch": arch or inferred_arch,
            "dual_bn": dual,
            "num_classes": n,
            "class_names": class_names
            if class_names is not None
            else [f"class_{i}" for i in range(n)],
            "in_channels": in_channels or stem_channels or 3,
            "image_size": image_size or (256 if dual else 224),
            "normalize": None,
            "train": {
                "mode": "imported",
                "source_layout": "seed-dual-bn" if dual else "torchvision",
            },
        }
        sd = {f"backbone.{k}": v for k, v in raw.items()}
        source_format = "seed-dual-bn" if dual else "torchvision"
    _validate_meta(meta)
    momentum = float((meta.get("train") or {}).get("bn_momentum", 0.01))
    try:
        model = create_model(
            meta["arch"],
            int(meta["num_classes"]),
            int(meta["in_channels"]),
            dual_bn=bool(meta["dual_bn"]),
            normalize=meta["normalize"],
            bn_momentum=momentum,
        )
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    _fit_state_dict(
        model, sd, f"{meta['arch']} (dual_bn={meta['dual_bn']}, {meta['num_classes']} classes)"
    )
    if is_dual_bn(model) != bool(meta["dual_bn"]):
        raise CheckpointError(f"{name}: dual_bn flag does not match the weights")
    model.eval()
    _dummy_forward(model, meta)
    model.to(map_location)
    return LoadedCheckpoint(
        model=model, meta=meta, sha256=digest, source_format=source_format, extra=extra
    )
