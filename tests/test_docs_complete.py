"""The reference docs cover the real surface: every CLI command and option, every API route.

The lists are not maintained by hand in the tests: the CLI parser and the app's route table are
walked, so a new command, option or route without documentation fails here.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.cli.main import build_parser
from app.config import Settings
from app.main import API_PREFIX, create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HEADING = re.compile(r"^(#+)\s+(.*)$")
COMMAND_IN_HEADING = re.compile(r"`radsal ([a-z0-9_ -]+?)`")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every runnable command path ("demo", "db upgrade", ...) with its parser."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for name, sub in _subparsers(parser).items():
        path = (*prefix, name)
        children = _commands(sub, path)
        found.extend(children or [(" ".join(path), sub)])
    return found


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Long option names (the documented spelling) and positional argument names."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            longs = [o for o in action.option_strings if o.startswith("--")]
            names.append(longs[0] if longs else action.option_strings[0])
        else:
            names.append(str(action.metavar or action.dest).upper())
    return names


def _sections(text: str) -> dict[str, str]:
    """Map each command named in a heading (`radsal X`) to the text up to the next heading."""
    sections: dict[str, str] = {}
    current: list[str] = []
    lines: list[str] = []
    for line in [*text.splitlines(), "# end"]:
        match = HEADING.match(line)
        if match:
            for name in current:
                sections[name] = "\n".join(lines)
            current = [m.strip() for m in COMMAND_IN_HEADING.findall(match.group(2))]
            lines = []
        else:
            lines.append(line)
    return sections


CLI_COMMANDS = _commands(build_parser())


def test_the_cli_walk_finds_the_contract_commands() -> None:
    names = {name for name, _ in CLI_COMMANDS}
    assert {"demo", "serve", "db upgrade"} <= names


@pytest.mark.parametrize(("name", "parser"), CLI_COMMANDS, ids=[n for n, _ in CLI_COMMANDS])
def test_every_cli_command_and_option_is_documented(
    name: str, parser: argparse.ArgumentParser
) -> None:
    sections = _sections((DOCS / "cli.md").read_text())
    assert name in sections, f"docs/cli.md has no heading naming `radsal {name}`"
    body = sections[name]
    for option in _options(parser):
        # Positionals are documented by their upper-case name (e.g. STUDY); options by --flag.
        pattern = rf"(?<![\w-]){re.escape(option)}(?![\w-])"
        flags = 0 if option.startswith("-") else re.IGNORECASE
        assert re.search(pattern, body, flags), (
            f"docs/cli.md, section `radsal {name}`: option {option} is not documented"
        )


def _api_routes() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            Settings(data_dir=Path(tmp), secret_key="x"), migrate=False, start_worker=False
        )
    found = set()
    for path, methods, route in _flat_routes(app):
        if isinstance(route, APIRoute) and path.startswith(API_PREFIX + "/"):
            for method in methods - {"HEAD", "OPTIONS"}:
                found.add(f"{method} {path}")
    return sorted(found)


def _flat_routes(app: FastAPI) -> list[tuple[str, set[str], BaseRoute]]:
    """(full path, methods, route) for every route, whichever way FastAPI nests routers.

    FastAPI >= 0.165 keeps included routers as lazy nodes in `app.routes`; older versions
    flatten them. `iter_route_contexts` (new) resolves prefixes; the fallback reads the flat list.
    """
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]
    except ImportError:
        return [
            (r.path, set(getattr(r, "methods", None) or ()), r)
            for r in app.routes
            if hasattr(r, "path")
        ]
    return [
        (str(c.path), set(c.methods or ()), c.original_route)
        for c in iter_route_contexts(app.routes)
    ]


API_ROUTES = _api_routes()


def test_the_route_walk_finds_the_api() -> None:
    assert f"POST {API_PREFIX}/auth/token" in API_ROUTES


@pytest.mark.parametrize("route", API_ROUTES)
def test_every_api_route_is_documented(route: str) -> None:
    text = (DOCS / "api.md").read_text()
    pattern = rf"{re.escape(route)}(?![\w/{{}}-])"
    assert re.search(pattern, text), f"docs/api.md does not document {route}"


def test_api_docs_name_no_route_that_does_not_exist() -> None:
    """A renamed or removed route must leave the reference too."""
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/api/v1/[\w/{}.-]*)", text))
    stale = sorted(f"{m} {p}" for m, p in documented if f"{m} {p}" not in API_ROUTES)
    assert not stale, f"docs/api.md documents routes the app does not have: {stale}"


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    if not doc.exists():
        pytest.fail(f"{doc.relative_to(ROOT)} is missing")
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{doc.name} links to {target}, which does not exist"


def test_docs_index_lists_every_document() -> None:
    index = (DOCS / "index.md").read_text()
    for doc in sorted(DOCS.glob("*.md")):
        if doc.name != "index.md":
            assert f"({doc.name})" in index, f"docs/index.md does not link {doc.name}"


def test_every_role_has_its_guide() -> None:
    for guide in ("admin.md", "researcher.md", "rater.md", "ml.md", "deployment.md"):
        assert (DOCS / guide).is_file(), f"docs/{guide} is missing"
