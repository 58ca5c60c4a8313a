"""Device selection shared by every ml entry point.

One function decides, so the CLI, the training loop and the app's inference service all agree
on what ``auto`` means (CUDA when present, else CPU) and fail the same way when CUDA is asked
for but absent.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(preference: str = "auto") -> torch.device:
    """Return the torch device for ``preference`` ("auto", "cpu", "cuda" or "cuda:N").

    Raises ValueError with a human message when CUDA is requested but not available, rather
    than letting a later ``.to("cuda")`` fail deep inside a training loop.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {preference!r} requested but CUDA is not available on this machine "
                "(use 'auto' or 'cpu')"
            )
        device = torch.device(pref)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {preference!r} requested but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
        return device
    raise ValueError(f"unknown device {preference!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
