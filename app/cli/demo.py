"""`radsal demo`: build the demo study (app.demo.pipeline) and serve it.

The options' defaults are `DemoOptions`' (written once, in app.demo.options); the build itself
(torch, ml) loads only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.cli import serve
from app.config import Settings, get_settings
from app.demo.options import MODALITIES, DataError, DemoError, DemoOptions
from app.demo.reset import reset_demo
from app.demo.summary import format_summary
from app.errors import DomainError

# Options that fill a DemoOptions field of the same name (the rest drive the command itself).
_OPTION_FIELDS = {f.name for f in fields(DemoOptions)} - {"progress"}


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="build a demo study (train, evaluate, import, generate maps) and serve it",
        description=(
            "Build a complete reader study on the embedded default (SQLite in the data "
            "directory): a data set, a standard and a dual-BN model trained with ml/, their "
            "evaluation, both checkpoints and the study images imported, a study with raters "
            "and both arms, its saliency maps; then print the logins and serve. Re-running "
            "reuses every finished step."
        ),
    )
    p.add_argument(
        "--data",
        type=Path,
        help="your own images instead of synthetic lesions: a folder with train/ and val/ "
        "class folders, a CSV, or a folder holding labels.csv (e.g. the NIH chest X-rays)",
    )
    p.add_argument(
        "--modality",
        choices=MODALITIES,
        help="synthetic data: X-ray PNGs, or CT (HU, lung/mediastinum windows) / MR as real "
        "DICOM files (default %(default)s)",
    )
    p.add_argument("--reset", action="store_true", help="delete the demo and its SQLite DB first")
    p.add_argument("--no-serve", action="store_true", help="build only, do not start the server")
    p.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    p.add_argument("--epochs", type=int, help="training epochs per model (default %(default)s)")
    p.add_argument("--image-size", type=int, help="model input size (default %(default)s)")
    p.add_argument("--n-images", type=int, help="cases in the study (default %(default)s)")
    p.add_argument("--n-train", type=int, help="synthetic training images (%(default)s)")
    p.add_argument("--raters", type=int, help="raters invited (default %(default)s)")
    p.add_argument("--arch", help="model architecture (%(default)s)")
    p.add_argument("--batch-size", type=int, help="training batch size (default %(default)s)")
    p.add_argument("--seed", type=int, help="seed for data, training and design")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default %(default)s: fastest for the tiny default models, "
        "especially on a busy machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    defaults = DemoOptions()
    p.set_defaults(func=main, **{name: getattr(defaults, name) for name in _OPTION_FIELDS})


def main(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `radsal` command (`radsal serve` too) imports this
    # module to build its parser, and the build pulls in torch and ml.
    from app.demo.pipeline import build_demo

    settings = get_settings()
    try:
        given = {name: getattr(args, name) for name in _OPTION_FIELDS}
        options = DemoOptions(**given, progress=not args.no_progress)
        if args.reset:
            removed = reset_demo(settings)
            print(f"reset: removed {len(removed)} demo file(s) and folder(s)", file=sys.stderr)
        base_url = public_url(settings, args.host, args.port)
        result = build_demo(settings, options, base_url=base_url)
    except (DemoError, DataError) as exc:
        print(f"radsal demo: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:  # a service refused something (e.g. an image it cannot read)
        print(f"radsal demo: {exc.message}", file=sys.stderr)
        return 2
    print(format_summary(result), flush=True)
    if args.no_serve:
        print(f"\nStart the server with: radsal serve --host {args.host} --port {args.port}")
        return 0
    # Links the app prints later (Admin → Users → Invite) must point here too.
    settings.base_url = base_url
    print("\nServing (Ctrl+C stops; `radsal demo` again resumes instantly).", flush=True)
    return serve.main(_serve_args(serve, args.host, args.port))


def _serve_args(serve: Any, host: str, port: int) -> argparse.Namespace:
    """`radsal serve`'s own parser fills in its defaults: the demo serves exactly as it does.

    The demo has made its admin already, so serve's first-admin bootstrap is skipped.
    """
    parser = argparse.ArgumentParser(prog="radsal")
    serve.add_parsers(parser.add_subparsers(dest="command"))
    argv = ["serve", "--host", host, "--port", str(port), "--log-level", "warning"]
    return parser.parse_args([*argv, "--no-bootstrap-admin"])


def public_url(settings: Settings, host: str, port: int) -> str:
    """RADSAL_BASE_URL when the admin set one (env or .env, e.g. behind a proxy), else where
    this command serves: the printed invite links must open this server."""
    if "base_url" in settings.model_fields_set:
        return settings.base_url.rstrip("/")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"
