"""A database session for one CLI command, on the configured database migrated to head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def cli_session(*, readonly: bool = False) -> Iterator[Session]:
    """One transaction for the command: committed on success (unless `readonly`), else rolled
    back. Migrations are applied first so a command works on a fresh data directory."""
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade_database

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    upgrade_database(engine)
    session = make_sessionmaker(engine)()
    try:
        yield session
        if readonly:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        engine.dispose()
