"""Engine and session handling. The request's session commits or rolls back in one place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from starlette.requests import Request


class Base(DeclarativeBase):
    """Declarative base for every ORM model."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent raters."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy manage transactions (pysqlite's own BEGIN handling is broken).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def get_db(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request; commit on success, roll back on error.

    Services never commit; this is the single place a request's work becomes durable, and it
    happens before the response is sent (so "saved" means saved).
    """
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        # Detach first: rollback would expire every loaded object, and the error page rendered
        # after this still reads the caller's user and CSRF token (already loaded, unchanged).
        session.expunge_all()
        session.rollback()
        raise
    finally:
        session.close()


def ping(db: Session) -> None:
    """A round trip to the database: readiness means the database answers, not just the app."""
    db.execute(text("SELECT 1"))
