"""Package boundaries: `ml/` is a pure library and never imports the web application."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def app_imports(source: str) -> list[str]:
    """Every `import app…` / `from app… import` in a module, at any nesting level."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "app" or a.name.startswith("app.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "app" or node.module.startswith("app."):
                found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == "app":
                found.append(str(arg.value))
    return found


def test_ml_never_imports_app() -> None:
    files = sorted((ROOT / "ml").rglob("*.py"))
    assert len(files) > 5
    offenders = {
        str(f.relative_to(ROOT)): hits
        for f in files
        if (hits := app_imports(f.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_scan_catches_every_import_form() -> None:
    source = (
        "import app\nimport app.db as d\nfrom app.models import User\n"
        "def f():\n    from app import errors\n    importlib.import_module('app.web')\n"
        "import apple\nfrom .app import x\nfrom application import y\n"
    )
    assert app_imports(source) == ["app", "app.db", "app.models", "app", "app.web"]


def test_project_layout_exists() -> None:
    for path in ("app", "ml", "templates", "static", "migrations", "tests", "docs", "bench"):
        assert (ROOT / path).is_dir(), path
    for path in ("docker-compose.yml", "pyproject.toml", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / path).is_file(), path
