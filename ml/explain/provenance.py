"""Provenance: what a stored map was computed from, so a study can be audited and repeated."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np
import torch

__all__ = ["jsonable", "library_versions", "provenance"]


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of everything that can change a map's values."""
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for dist in ("captum", "torchvision", "radsal", "pillow"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def jsonable(value: Any) -> Any:
    """Parameters as plain JSON types (tensors and numpy scalars included)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def provenance(
    *,
    checkpoint_sha256: str,
    route: str | None,
    method: str,
    params: Mapping[str, Any],
    target: str,
    compute_ms: float,
    device: str | torch.device | None = None,
    postprocess: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable record stored with every map."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    record: dict[str, Any] = {
        "checkpoint_sha256": checkpoint_sha256,
        "route": route,
        "method": method,
        "params": jsonable(dict(params)),
        "target": target,
        "compute_ms": float(compute_ms),
        "device": str(device),
        "versions": dict(library_versions()),
    }
    if postprocess is not None:
        record["postprocess"] = jsonable(dict(postprocess))
    return record
