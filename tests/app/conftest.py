"""App test fixtures: a real database per test session, each test in a rolled-back transaction.

SQLite by default; PostgreSQL when RADSAL_TEST_DATABASE_URL is set (each pytest run gets its own
schema there, so concurrent runs on one database never collide).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.auth.deps import SESSION_COOKIE
from app.auth.passwords import hash_password
from app.auth.sessions import issue_session
from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.migrate import upgrade_database
from app.models import Role, User

TEST_PASSWORD = "correct-horse-battery"


def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("RADSAL_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    if database_url.startswith("postgresql"):
        schema = f"radsal_test_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng = make_engine(database_url, connect_args={"options": f"-csearch_path={schema}"})
        upgrade_database(eng)
        yield eng
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    else:
        eng = make_engine(database_url)
        upgrade_database(eng)
        yield eng
        eng.dispose()


@pytest.fixture()
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    trans = conn.begin()
    try:
        yield conn
    finally:
        trans.rollback()
        conn.close()


@pytest.fixture()
def session_factory(connection: Connection) -> sessionmaker[Session]:
    """Sessions bound to the test's transaction: their commits are savepoints, rolled back."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture()
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture()
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key",
        device="cpu",
        worker="external",
        max_upload_mb=8,
    )


@pytest.fixture()
def app(settings: Settings, engine: Engine, session_factory: sessionmaker[Session]) -> FastAPI:
    application = create_app(settings, engine=engine, migrate=False, start_worker=False)
    application.state.sessionmaker = session_factory
    return application


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture()
def make_user(db: Session) -> Callable[..., User]:
    counter = {"n": 0}

    def _make(
        role: Role | str = Role.rater,
        username: str | None = None,
        password: str | None = TEST_PASSWORD,
        **fields: Any,
    ) -> User:
        counter["n"] += 1
        role_value = Role(role).value
        user = User(
            username=username or f"{role_value}{counter['n']}",
            display_name=fields.pop("display_name", f"Test {role_value} {counter['n']}"),
            role=role_value,
            password_hash=hash_password(password) if password else None,
            **fields,
        )
        db.add(user)
        db.flush()
        return user

    return _make


class LoggedIn:
    """A logged-in browser session on a TestClient: cookie set, CSRF token at hand."""

    def __init__(self, client: TestClient, user: User, csrf: str) -> None:
        self.client = client
        self.user = user
        self.csrf = csrf

    def post_form(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        payload = dict(data or {})
        payload.setdefault("csrf_token", self.csrf)
        return self.client.post(url, data=payload, follow_redirects=False, **kw)

    def post_json(self, url: str, json: Any, **kw: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.post(url, json=json, headers=headers, **kw)


@pytest.fixture()
def login(db: Session, client: TestClient) -> Callable[[User], LoggedIn]:
    def _login(user: User) -> LoggedIn:
        issued = issue_session(db, user, kind="web", lifetime=dt.timedelta(hours=1))
        db.flush()
        client.cookies.set(SESSION_COOKIE, issued.token)
        return LoggedIn(client, user, issued.csrf_token)

    return _login


@pytest.fixture()
def api_headers(db: Session) -> Callable[[User], dict[str, str]]:
    def _headers(user: User) -> dict[str, str]:
        issued = issue_session(db, user, kind="api", lifetime=dt.timedelta(hours=1))
        db.flush()
        return {"Authorization": f"Bearer {issued.token}"}

    return _headers
