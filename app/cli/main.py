"""`radsal`: one command with subcommands; each subcommand module is a thin front end."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ml.cli import register_all as register_ml_commands

# Modules exposing add_parsers(subparsers): each adds one or more subcommands.
APP_COMMAND_MODULES = (
    "app.cli.demo",
    "app.cli.serve",
    "app.cli.worker",
    "app.cli.db",
    "app.cli.users",
    "app.cli.export_analyze",
    "app.cli.power",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radsal",
        description="Saliency-map reader studies for medical imaging.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in APP_COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    register_ml_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
