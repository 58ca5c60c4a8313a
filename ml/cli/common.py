"""Small helpers shared by the ml command-line front ends."""

from __future__ import annotations

import argparse
import sys

__all__ = ["comma_list", "float_list", "report_error"]


def comma_list(text: str) -> list[str]:
    """``"a,b , c"`` → ``["a", "b", "c"]`` (argparse type)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def float_list(text: str) -> list[float]:
    """``"0.001,0.005"`` → floats (argparse type)."""
    try:
        return [float(t) for t in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def report_error(command: str, exc: BaseException) -> int:
    """Print a one-line error (no traceback: these are user errors) and return exit code 2."""
    print(f"radsal {command}: error: {exc}", file=sys.stderr)
    return 2
