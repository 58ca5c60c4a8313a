"""API fuzzing from the app's own /openapi.json (Schemathesis, in process over ASGI).

Every operation gets a bounded number of generated requests, each sent twice: with a staff
(admin) bearer token and with a rater's. A run fails on any 5xx, any response whose body
breaks the schema the operation declares, and any response to the rater that names an arm
or a checkpoint (blinding). Status codes other than 5xx are not judged here: 401/403/404/409
for generated ids and tokens are correct answers the route tests pin down.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.sessions import issue_session
from app.config import Settings
from app.models import Arm, Checkpoint, User
from tests.factories import make_open_study

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25


@pytest.fixture()
def fuzz_world(
    app: FastAPI, db: Session, settings: Settings, make_user: Callable[..., User]
) -> dict[str, Any]:
    """An admin, a rater with an open study (real trials, arms, checkpoints) and their tokens."""
    admin = make_user("admin", username="fuzz-admin")
    rater = make_user("rater", username="fuzz-rater")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=32)
    arms = list(db.scalars(select(Arm).where(Arm.study_id == study.id)))
    ckpts = [db.get(Checkpoint, a.checkpoint_id) for a in arms]
    secrets = (
        {a.label for a in arms} | {c.name for c in ckpts if c} | {c.sha256 for c in ckpts if c}
    )
    hour = dt.timedelta(hours=1)
    tokens = {
        role: issue_session(db, user, kind="api", lifetime=hour).token
        for role, user in (("staff", admin), ("rater", rater))
    }
    db.flush()
    return {"tokens": tokens, "secrets": secrets, "study": study, "seen": Counter()}


def _fuzz_operation(operation: Any, world: dict[str, Any]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for role in ("staff", "rater"):
            headers = {"Authorization": f"Bearer {world['tokens'][role]}"}
            response = case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )
            world["seen"][(role, response.status_code // 100)] += 1
            if role == "rater":
                leaked = sorted(s for s in world["secrets"] if s and s in response.text)
                assert not leaked, f"{case.method} {case.formatted_path} leaked {leaked}"

    run()


def test_api_from_its_own_schema(app: FastAPI, fuzz_world: dict[str, Any]) -> None:
    """Each operation in turn (one pytest test: the app and its data are fixtures); every
    failing operation is reported, not just the first."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz_operation(operation, fuzz_world)
        except (Exception, BaseExceptionGroup) as exc:  # collected and reported below
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    seen = fuzz_world["seen"]
    assert operations >= 15
    # The tokens worked: staff got successes, and so did the rater (whose answers were
    # searched for arm and checkpoint names), so the run tested more than the login wall.
    assert seen[("staff", 2)] >= operations and seen[("rater", 2)] >= 1, dict(seen)
