"""Thin command-line front ends over the ml library.

Each module exposes ``add_parser(subparsers)``; the parser it adds sets ``func`` to a
``main(args) -> int``. The top-level ``radsal`` command (app/cli) collects them here, so
``ml`` never imports ``app``.
"""

from __future__ import annotations

import argparse
import importlib

ML_COMMANDS = ("train", "evaluate", "import_checkpoint", "saliency", "experiment")


def register_all(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name in ML_COMMANDS:
        module = importlib.import_module(f"ml.cli.{name}")
        module.add_parser(subparsers)
