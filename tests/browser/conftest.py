"""Real-browser harness: the real server (`radsal serve` in a subprocess) + Debian's Chromium.

Fixtures others use:
- `live_server` (session-scoped) / `fresh_server` (per test): a `LiveServer` with `.url`,
  `.data_dir`, `.database_url`, `.env`, `.run_cli(*args)`, `.session()`, `.create_user(...)`.
- `browser` (session-scoped Playwright Browser) and `page` (fresh context + page per test,
  1366×768; a screenshot lands in the test's tmp dir when the test fails).
- `login_via_form(page, base_url, username, password)`.

Outside CI a missing Chromium or Playwright skips these tests with the reason; under CI=true it
fails them, so a broken CI image cannot pass by running nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

CHROMIUM = os.environ.get("RADSAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "browser-test-password"
STARTUP_TIMEOUT_S = 120.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the browser harness cannot run: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _radsal_command() -> list[str]:
    """The installed `radsal` script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("radsal")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "app.cli.main"]


@dataclass
class LiveServer:
    """A running `radsal serve` with its own data directory and SQLite database."""

    url: str
    data_dir: Path
    database_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    _engine: Engine | None = field(default=None, repr=False)

    def run_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `radsal ARGS…` against the same database and data directory."""
        result = subprocess.run(
            [*_radsal_command(), *args],
            env={**os.environ, **self.env},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"radsal {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A Session on the server's database; commits on success (to seed data directly)."""
        from app.db import make_engine, make_sessionmaker

        if self._engine is None:
            self._engine = make_engine(self.database_url)
        db = make_sessionmaker(self._engine)()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def create_user(
        self, username: str, role: str, password: str = PASSWORD, display_name: str = ""
    ) -> int:
        """Create (or reuse) a user with a known password; returns its id."""
        from sqlalchemy import select

        from app.models import User
        from app.services.accounts.users import create_user

        with self.session() as db:
            existing = db.scalar(select(User).where(User.username == username))
            if existing is not None:
                return existing.id
            user, _ = create_user(
                db,
                actor=None,
                username=username,
                role=role,
                password=password,
                display_name=display_name,
            )
            return user.id

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(base: Path, extra_env: dict[str, str] | None = None) -> LiveServer:
    """Start `radsal serve` on a free port and wait until /healthz answers."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{data_dir / 'radsal.sqlite'}"
    env = {
        "RADSAL_DATA_DIR": str(data_dir),
        "RADSAL_DATABASE_URL": database_url,
        "RADSAL_WORKER": "inprocess",
        "RADSAL_DEVICE": "cpu",
        "RADSAL_SECRET_KEY": "browser-test-secret",
        "RADSAL_BASE_URL": url,
        "RADSAL_BATCH_SIZE": "4",
        **(extra_env or {}),
    }
    log_path = base / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [*_radsal_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        cwd=PROJECT_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    server = LiveServer(url, data_dir, database_url, env, process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"radsal serve exited {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"radsal serve did not answer within {STARTUP_TIMEOUT_S}s:\n{server.log()}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole session: tests must use their own usernames/objects."""
    server = start_server(tmp_path_factory.mktemp("live_server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of its own, for tests that need an empty database or change global state."""
    server = start_server(tmp_path / "fresh_server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        # launch() gives Chromium a new, empty temporary user data dir every time (Playwright
        # refuses an explicit --user-data-dir here), so no profile state leaks between runs.
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Remember each phase's report on the item, so `page` can screenshot failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            shot = tmp_path / "failure.png"
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failed page: {shot}")
        context.close()


def login_via_form(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the real login form and wait for the redirect away from /login."""
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")


@pytest.fixture(name="login_via_form")
def login_via_form_fixture() -> Any:
    """The `login_via_form` helper as a fixture (conftest modules are not importable by name)."""
    return login_via_form


@pytest.fixture()
def login_as(page: Any, live_server: LiveServer) -> Any:
    """`login_as(username, role)`: create the user on the live server and log in as them."""

    def _login(username: str, role: str, password: str = PASSWORD) -> Any:
        live_server.create_user(username, role, password)
        login_via_form(page, live_server.url, username, password)
        return page

    return _login
