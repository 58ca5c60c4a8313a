"""The rules of the house, enforced: who may import whom.

`docs/architecture.md` draws the layers; this file keeps them true. Every rule is a function over
parsed source (no imports are executed), and `test_each_rule_can_fail` feeds each one a small
offending example, so a rule that silently stopped matching would fail here too.

Imports count at any nesting level (a function-local import is still a dependency) and in every
form: `import a.b`, `from a import b`, `from .b import c`, `importlib.import_module("a.b")`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The one bridge from app to ml, plus the two composition roots that use ml like any client:
# the CLI registers ml's own commands, and the demo trains models the way a user would.
ML_BRIDGE = "app.services.inference"
ML_CLIENTS = ("app.cli.main", "app.demo")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module name `source` (the text of `module`) imports, in source order.

    `from pkg import name` yields `pkg.name` as well as `pkg`: whether `name` is a submodule is
    decided later against the known modules (`resolve`).
    """
    found: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(arg.value)
    return found


def resolve(names: Iterable[str], known: set[str]) -> set[str]:
    """The known modules among `names` (a `from pkg import func` keeps only `pkg`)."""
    return {n for n in names if n in known}


def tops(names: Iterable[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True)
class Module:
    name: str
    imports: tuple[str, ...]  # raw imported names (see imported_modules)


def scan(package: str, root: Path = ROOT) -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted((root / package).rglob("*.py")):
        name = module_name(path, root)
        source = path.read_text(encoding="utf-8")
        out[name] = Module(name, tuple(imported_modules(source, name, path.stem == "__init__")))
    return out


# ---- the rules: each returns {module: [offending imports]} -------------------------------


def forbidden_imports(
    modules: dict[str, Module], where: str, banned: Iterable[str], allowed: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Modules under `where` (except `allowed` ones) that import anything under `banned`."""
    banned, allowed = tuple(banned), tuple(allowed)
    out: dict[str, list[str]] = {}
    for mod in modules.values():
        if not under(mod.name, where) or any(under(mod.name, a) for a in allowed):
            continue
        hits = {i for i in mod.imports if any(under(i, b) for b in banned)}
        # `from pkg import name` yields pkg and pkg.name: report pkg once.
        hits = {h for h in hits if h.rpartition(".")[0] not in hits}
        if hits:
            out[mod.name] = sorted(hits)
    return out


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    known = set(modules)
    return {
        name: {m for m in resolve(mod.imports, known) if m != name} for name, mod in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def ml_outside_bridge(modules: dict[str, Module]) -> dict[str, list[str]]:
    return forbidden_imports(modules, "app", ["ml"], allowed=(ML_BRIDGE, *ML_CLIENTS))


def route_violations(modules: dict[str, Module]) -> dict[str, list[str]]:
    """Routes are thin and independent; only the package's `__init__` gathers the routers."""
    out = forbidden_imports(modules, "app.routes", ["sqlalchemy", "ml", "app.routes"])
    gather = forbidden_imports(modules, "app.routes", ["sqlalchemy", "ml"])
    if "app.routes" in gather:
        out["app.routes"] = gather["app.routes"]
    else:
        out.pop("app.routes", None)
    return out


def service_violations(modules: dict[str, Module]) -> dict[str, list[str]]:
    banned = ["fastapi", "starlette", "app.worker", "app.routes", "app.web", "app.handlers"]
    banned += ["app.main", "app.cli", "app.demo"]
    return forbidden_imports(modules, "app.services", banned)


def stats_violations(modules: dict[str, Module]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, hits in forbidden_imports(modules, "app.stats", ["app"]).items():
        rest = [h for h in hits if not under(h, "app.stats")]
        if rest:
            out[name] = rest
    return out


def ml_violations(modules: dict[str, Module]) -> dict[str, list[str]]:
    return forbidden_imports(modules, "ml", ["app"])


# ---- the real tree ---------------------------------------------------------------------------


def _app() -> dict[str, Module]:
    modules = scan("app")
    assert len(modules) > 40, "the scan found too few modules: is ROOT right?"
    return modules


def test_ml_never_imports_app() -> None:
    modules = scan("ml")
    assert len(modules) > 5
    assert ml_violations(modules) == {}


def test_routes_import_neither_sqlalchemy_nor_ml_nor_other_routes() -> None:
    assert route_violations(_app()) == {}


def test_services_import_no_web_layer_worker_or_clients() -> None:
    assert service_violations(_app()) == {}


def test_stats_import_nothing_from_app() -> None:
    assert stats_violations(_app()) == {}


def test_only_the_bridge_imports_ml() -> None:
    modules = _app()
    assert ML_BRIDGE in modules, "the bridge module to ml/ is missing"
    assert ml_outside_bridge(modules) == {}


def test_no_import_cycles_in_app() -> None:
    assert cycles(import_graph(_app())) == []


def test_services_are_grouped_by_domain() -> None:
    """No loose modules in app/services beyond the bridge and the shared audit log."""
    loose = sorted(
        p.name
        for p in (ROOT / "app" / "services").glob("*.py")
        if p.name not in ("__init__.py", "inference.py", "audit.py")
    )
    assert loose == []


# ---- the rules can fail ----------------------------------------------------------------------


def _fake(**sources: str) -> dict[str, Module]:
    return {name: Module(name, tuple(imported_modules(src, name))) for name, src in sources.items()}


def test_the_scan_catches_every_import_form() -> None:
    source = (
        "import app\nimport app.db as d\nfrom app.models import User\n"
        "def f():\n    from app import errors\n    importlib.import_module('app.web')\n"
        "import apple\nfrom .sibling import x\nfrom application import y\n"
    )
    names = sorted(imported_modules(source, "app.services.thing"))
    assert names == sorted(
        [
            "app",
            "app.db",
            "app.models",
            "app.models.User",
            "app",
            "app.errors",
            "app.web",
            "apple",
            "app.services.sibling",
            "app.services.sibling.x",
            "application",
            "application.y",
        ]
    )
    assert tops(names) == {"app", "apple", "application"}


def test_each_rule_can_fail() -> None:
    bad = _fake(
        **{
            "app.routes.x": "from sqlalchemy import select\nfrom app.routes.y import f\n",
            "app.routes.y": "def g():\n    from ml.explain import METHODS\n",
            "app.services.a.s": "from fastapi import Request\n",
            "app.services.b.t": "def h():\n    from app.worker import run_one\n",
            "app.services.c.u": "from app.services.c import v\nimport ml.data\n",
            "app.services.c.v": "from app.services.c.u import thing\n",
            "app.services.c": "",
            "app.stats.z": "from app.models import Rating\nfrom app.stats import frames\n",
            "app.routes": "from app.routes import x, y\n",
            "ml.k": "from app.config import Settings\n",
            "app.services.inference": "import ml.explain\n",
            "app.demo.m": "import ml.training\n",
        }
    )
    assert route_violations(bad) == {
        "app.routes.x": ["app.routes.y", "sqlalchemy"],
        "app.routes.y": ["ml.explain"],
    }
    assert service_violations(bad) == {
        "app.services.a.s": ["fastapi"],
        "app.services.b.t": ["app.worker"],
    }
    assert stats_violations(bad) == {"app.stats.z": ["app.models"]}
    assert ml_violations(bad) == {"ml.k": ["app.config"]}
    assert ml_outside_bridge(bad) == {
        "app.routes.y": ["ml.explain"],
        "app.services.c.u": ["ml.data"],
    }
    assert cycles(import_graph(bad)) == [["app.services.c.u", "app.services.c.v"]]


def test_cycle_finder_handles_longer_loops_and_self_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_project_layout_exists() -> None:
    for path in ("app", "ml", "templates", "static", "migrations", "tests", "docs", "bench"):
        assert (ROOT / path).is_dir(), path
    for path in ("docker-compose.yml", "pyproject.toml", "README.md", "Makefile", ".ci/run"):
        assert (ROOT / path).is_file(), path
