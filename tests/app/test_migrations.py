"""The ORM models and the Alembic migrations describe the same schema, in both directions.

Runs on a fresh SQLite file, and on a fresh PostgreSQL schema when RADSAL_TEST_DATABASE_URL
points at PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

import app.models  # noqa: F401  (registers every table)
from app.db import Base, make_engine
from app.migrate import downgrade_database, upgrade_database

PG_URL = os.environ.get("RADSAL_TEST_DATABASE_URL", "")


def _fresh_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrations.sqlite'}")
    yield engine
    engine.dispose()


def _fresh_postgres() -> Iterator[Engine]:
    schema = f"radsal_mig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not PG_URL.startswith("postgresql"), reason="RADSAL_TEST_DATABASE_URL not set"
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield from _fresh_sqlite(tmp_path)
    else:
        yield from _fresh_postgres()


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, Base.metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_matches_models_and_round_trips(fresh_engine: Engine) -> None:
    model_tables = set(Base.metadata.tables)
    assert {"users", "auth_sessions", "invites", "audit_events", "ratings"} <= model_tables

    upgrade_database(fresh_engine)
    assert _tables(fresh_engine) == model_tables
    assert _diff(fresh_engine) == []

    downgrade_database(fresh_engine, "base")
    assert _tables(fresh_engine) == set()

    upgrade_database(fresh_engine)
    assert _tables(fresh_engine) == model_tables
    assert _diff(fresh_engine) == []


def test_diff_detects_a_model_the_migrations_lack(fresh_engine: Engine) -> None:
    """The comparison is not vacuous: an extra model table shows up as a difference."""
    from sqlalchemy import Column, Integer, MetaData, Table

    upgrade_database(fresh_engine)
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    with fresh_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, extra)
    assert [d[0] for d in diff] == ["add_table"]
    assert diff[0][1].name == "not_migrated"


@pytest.mark.slow
def test_radsal_db_upgrade_cli_creates_the_schema(tmp_path: Path) -> None:
    db_file = tmp_path / "cli.sqlite"
    env = {
        **os.environ,
        "RADSAL_DATA_DIR": str(tmp_path / "data"),
        "RADSAL_DATABASE_URL": f"sqlite:///{db_file}",
    }
    r = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert "database upgraded to head" in r.stdout
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        assert _tables(engine) == set(Base.metadata.tables)
        assert _diff(engine) == []
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == "0001"
    finally:
        engine.dispose()
