"""Admission control between the event loop and the database: no thread-pool deadlock.

Sync routes and dependencies run in a bounded thread pool (40 threads). A request takes its
database resource (SQLite's write lock via BEGIN IMMEDIATE; a pooled PostgreSQL connection)
in its first dependency and releases it only at commit, after the route has run in *another*
pool thread. With more concurrent requests than threads, every thread can end up blocked
waiting for that resource while its holder waits for a thread: nothing moves until the
busy/pool timeout (30 s) fails the requests. Measured with bench/raters.py: at 50 concurrent
raters on SQLite every request timed out.

This gate makes requests wait on the event loop instead (no thread held) until one of
`capacity` slots is free: 1 for SQLite (which has one writer anyway, so this also replaces
the busy-handler's sleep-and-retry with a FIFO queue) and the pool size for other databases.
Multipart uploads bypass it: their bodies can take minutes to arrive, and the database is not
touched until the body has been read.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_CAPACITY = 32  # stay below the thread pool's 40 so routes always find a thread


def gate_capacity(engine: Engine) -> int:
    """How many requests may hold a database resource at once for this engine."""
    if engine.dialect.name == "sqlite":
        return 1
    pool = engine.pool
    size = int(getattr(pool, "size", lambda: 5)())
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    return max(1, min(MAX_CAPACITY, size + overflow))


class DbGate:
    """Pure ASGI middleware admitting at most `capacity` database-using requests at once."""

    def __init__(self, app: ASGIApp, capacity: int) -> None:
        self.app = app
        self.capacity = capacity
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _bypass(scope):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created on the serving loop, not at import
            self._slots = asyncio.Semaphore(self.capacity)
        async with self._slots:
            await self.app(scope, receive, send)


def _bypass(scope: Scope) -> bool:
    if str(scope.get("path", "")).startswith("/static/"):
        return True
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.startswith(b"multipart/form-data")
    return False
