"""Concurrent raters and duplicate submissions against a real, committing database.

The shared fixtures wrap each test in a rolled-back transaction on one connection, which
cannot show concurrency or "committed before the response". These tests build their own
migrated database (a SQLite file, or a fresh schema when RADSAL_TEST_DATABASE_URL points at
PostgreSQL), fire requests from many threads at once, and read the results back through a
separate connection.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from app.auth.sessions import issue_session
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade_database
from app.models import Rating, RatingRevision, Role, Trial, User
from tests.factories import make_open_study, rating_payload

N_RATERS = 6


@dataclass
class World:
    client: TestClient
    engine: Engine
    tokens: dict[int, str]  # rater id -> bearer token
    first_trial: dict[int, str]  # rater id -> token of their first trial


@pytest.fixture()
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    schema = None
    if database_url.startswith("postgresql"):
        schema = f"radsal_conc_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(database_url, connect_args={"options": f"-csearch_path={schema}"})
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'concurrency.sqlite'}")
    try:
        upgrade_database(engine)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            secret_key="concurrency-secret",
            worker="external",
        )
        factory = make_sessionmaker(engine)
        with factory() as db:
            raters = [
                User(username=f"conc{i}", display_name="", role=Role.rater.value)
                for i in range(N_RATERS)
            ]
            db.add_all(raters)
            db.flush()
            make_open_study(db, settings.data_dir, raters=raters, n_images=2)
            tokens = {
                r.id: issue_session(db, r, kind="api", lifetime=dt.timedelta(hours=1)).token
                for r in raters
            }
            first = {
                r.id: str(
                    db.scalar(
                        select(Trial.token).where(Trial.rater_id == r.id, Trial.position == 0)
                    )
                )
                for r in raters
            }
            db.commit()
        app = create_app(settings, engine=engine, migrate=False, start_worker=False)
        with TestClient(app) as client:
            yield World(client, engine, tokens, first)
    finally:
        engine.dispose()
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _post(world: World, rater_id: int, body: dict[str, object]) -> int:
    r = world.client.post(
        f"/api/v1/trials/{world.first_trial[rater_id]}/rating",
        json=body,
        headers={"Authorization": f"Bearer {world.tokens[rater_id]}"},
    )
    return r.status_code


@pytest.mark.slow
def test_concurrent_raters_and_double_submits_store_one_committed_rating_each(
    world: World,
) -> None:
    jobs = []
    for rater_id in world.tokens:
        body = rating_payload()
        jobs += [(rater_id, body)] * 8  # double clicks and retries: 48 requests > 40 threads
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        codes = list(pool.map(lambda job: _post(world, *job), jobs))
    assert codes == [200] * len(jobs)

    # A fresh connection (not the request's) sees exactly one rating and one revision each.
    with world.engine.connect() as conn:
        per_trial = conn.execute(
            select(Trial.rater_id, func.count(Rating.id))
            .join(Rating, Rating.trial_id == Trial.id)
            .group_by(Trial.rater_id)
        ).all()
        revisions = conn.scalar(select(func.count(RatingRevision.id)))
    assert sorted(per_trial) == sorted((rid, 1) for rid in world.tokens)
    assert revisions == N_RATERS


@pytest.mark.slow
def test_two_different_answers_racing_for_one_trial_leave_one_rating(world: World) -> None:
    rater_id = next(iter(world.tokens))
    bodies = [rating_payload(left_score=s) for s in (1, 2, 3, 4, 5)]
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        codes = list(pool.map(lambda b: _post(world, rater_id, b), bodies))
    # The study forbids editing: the first wins, the others are told it is already answered.
    assert sorted(codes) == [200, 409, 409, 409, 409]
    with world.engine.connect() as conn:
        assert conn.scalar(select(func.count(Rating.id))) == 1
        assert conn.scalar(select(func.count(RatingRevision.id))) == 1
