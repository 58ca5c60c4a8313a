"""Concurrent simulated raters against `radsal serve`: latency percentiles, errors, lost ratings.

For each backend (SQLite, PostgreSQL) a real server is started as a subprocess on loopback.
For each level N, N raters run at once (asyncio + httpx); each one, for `--rounds` trials,
asks for its next trial (JSON), loads the trial page (HTML) and its three images, and submits
a rating. Two modes: `burst` (no reading time: all N raters hit the server at the same
instant, a worst case that measures throughput) and `paced` (each rater reads for a random
0.5-1.5 x `--think` seconds before submitting, and raters start spread over one think time: the
load N real raters put on a server, compressed about 5x from a radiologist's ~25 s a trial).
Afterwards the database is asked how many ratings exist: anything short of N x rounds is a
lost rating. Run from the repository root:

    .venv/bin/python bench/raters.py                       # 6, 50, 200 on SQLite and PostgreSQL
    .venv/bin/python bench/raters.py --levels 50 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth.sessions import issue_session  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.migrate import upgrade_database  # noqa: E402
from app.models import Rating, Role, Trial, User  # noqa: E402
from tests.factories import make_open_study  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Level:
    """What one rater level measured: per-request latencies by kind, errors, lost ratings."""

    n: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    lost: int = 0
    retries: int = 0
    server_cpu_s: float = 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, data_dir: Path, n_raters: int, n_images: int) -> list[str]:
    """Migrate, create raters in one open study and give each an API token."""
    engine = make_engine(url)
    upgrade_database(engine)
    with make_sessionmaker(engine)() as db:
        raters = [
            User(username=f"bench{i}", display_name="", role=Role.rater.value)
            for i in range(n_raters)
        ]
        db.add_all(raters)
        db.flush()
        make_open_study(db, data_dir, raters=raters, n_images=n_images, size=256)
        tokens = [
            issue_session(db, r, kind="api", lifetime=dt.timedelta(hours=2)).token for r in raters
        ]
        db.commit()
    engine.dispose()
    return tokens


def count_ratings(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count(Rating.id)).join(Trial, Trial.id == Rating.trial_id))
    engine.dispose()
    return int(n or 0)


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "RADSAL_DATA_DIR": str(data_dir),
        "RADSAL_DATABASE_URL": url,
        "RADSAL_WORKER": "external",
        "RADSAL_SECRET_KEY": "bench-secret",
    }
    radsal = Path(sys.executable).with_name("radsal")
    cmd = [str(radsal)] if radsal.exists() else [sys.executable, "-m", "app.cli.main"]
    proc = subprocess.Popen(
        [*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("radsal serve did not start")


async def one_rater(
    client: httpx.AsyncClient,
    token: str,
    rounds: int,
    level: Level,
    deadline: float,
    think: float,
    rng: random.Random,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    if think:
        await asyncio.sleep(rng.uniform(0, think))

    async def timed(kind: str, method: str, url: str, **kw: object) -> httpx.Response | None:
        if time.monotonic() > deadline:
            level.errors.append(f"{kind}: time limit")
            return None
        t0 = time.perf_counter()
        try:
            try:
                r = await client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
            except httpx.TransportError:
                # One retry, as the trial page does (a rating carries its request_id, so a
                # retried submit cannot store twice); counted in `retries`, not in errors.
                level.retries += 1
                r = await client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            level.errors.append(f"{kind}: {type(exc).__name__}")
            return None
        level.latencies[kind].append((time.perf_counter() - t0) * 1000)
        if r.status_code >= 400:
            level.errors.append(f"{kind}: HTTP {r.status_code}")
            return None
        return r

    for _ in range(rounds):
        nxt = await timed("next", "GET", "/api/v1/trials/next")
        if nxt is None:
            return
        trial = nxt.json()
        if trial.get("done"):
            level.errors.append("next: unexpectedly done")
            return
        await timed("page", "GET", trial["page_url"])
        await asyncio.gather(
            timed("image", "GET", trial["image_url"]),
            timed("image", "GET", trial["map_urls"]["a"]),
            timed("image", "GET", trial["map_urls"]["b"]),
        )
        if think:
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
        body = {
            "left_score": 3,
            "right_score": 4,
            "preference": "right",
            "active_ms": 4000,
            "total_ms": 5000,
            "request_id": uuid.uuid4().hex,
        }
        await timed("submit", "POST", trial["rating_url"], json=body)


async def run_level(
    base: str, tokens: list[str], rounds: int, limit_s: float, think: float
) -> Level:
    level = Level(n=len(tokens))
    rng = random.Random(len(tokens))
    # Drop idle connections before uvicorn's 5 s keep-alive timeout closes them under us.
    limits = httpx.Limits(
        max_connections=len(tokens) * 3,
        max_keepalive_connections=len(tokens),
        keepalive_expiry=2.0,
    )
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        t0 = time.monotonic()
        deadline = t0 + limit_s
        await asyncio.gather(
            *(one_rater(client, t, rounds, level, deadline, think, rng) for t in tokens)
        )
        level.wall_s = time.monotonic() - t0
    return level


def schema_url(base_url: str, schema: str) -> str:
    return f"{base_url}?options={quote(f'-csearch_path={schema}')}"


def bench_backend(
    name: str, levels: list[int], rounds: int, limit_s: float, modes: dict[str, float]
) -> dict[str, list[Level]]:
    with tempfile.TemporaryDirectory(prefix=f"radsal-bench-{name}-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        schema = None
        if name == "postgres":
            schema = f"radsal_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = schema_url(PG_URL, schema)
        else:
            url = f"sqlite:///{data_dir / 'radsal.sqlite'}"
        proc = None
        try:
            tokens = seed(url, data_dir, sum(levels) * len(modes) + 2, n_images=rounds)
            proc, base = start_server(url, data_dir)
            # Warm-up (imports, template compilation, connection pool), not measured.
            await_level(base, tokens[-2:], rounds, limit_s, 0.0)
            results: dict[str, list[Level]] = {}
            offset = 0
            for mode, think in modes.items():
                for n in levels:
                    before = count_ratings(url)
                    cpu0 = cpu_seconds(proc.pid)
                    level = await_level(base, tokens[offset : offset + n], rounds, limit_s, think)
                    level.server_cpu_s = cpu_seconds(proc.pid) - cpu0
                    offset += n
                    level.lost = n * rounds - (count_ratings(url) - before)
                    results.setdefault(mode, []).append(level)
                    report_line(f"{name}/{mode}", level)
            return results
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
            if schema is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


def await_level(base: str, tokens: list[str], rounds: int, limit_s: float, think: float) -> Level:
    return asyncio.run(run_level(base, tokens, rounds, limit_s, think))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process (Linux /proc), independent of how busy
    the rest of the machine is: the honest per-request cost on a shared box."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_line(backend: str, level: Level) -> None:
    every = [v for vs in level.latencies.values() for v in vs]
    sub = level.latencies.get("submit", [])
    page = level.latencies.get("page", [])
    img = level.latencies.get("image", [])
    print(
        f"{backend:16} N={level.n:<4} requests={len(every):<5} errors={len(level.errors):<3} "
        f"lost={level.lost:<3} all p50/p95/p99 = {pct(every, 50):6.1f} /{pct(every, 95):6.1f} /"
        f"{pct(every, 99):6.1f} ms | page p95 {pct(page, 95):6.1f} | image p95 "
        f"{pct(img, 95):6.1f} | submit p95 {pct(sub, 95):6.1f} ms | "
        f"{len(every) / max(level.wall_s, 1e-9):5.0f} req/s | server CPU "
        f"{level.server_cpu_s * 1000 / max(len(every), 1):4.1f} ms/req | retries {level.retries}",
        flush=True,
    )
    if level.errors:
        kinds: dict[str, int] = defaultdict(int)
        for e in level.errors:
            kinds[e] += 1
        print("          errors:", dict(kinds), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="6,50,200", help="comma-separated rater counts")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--rounds", type=int, default=2, help="trials each rater answers")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per level")
    parser.add_argument("--modes", default="burst,paced", help="burst and/or paced")
    parser.add_argument("--think", type=float, default=5.0, help="paced: mean reading seconds")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    modes = {m: (0.0 if m == "burst" else args.think) for m in args.modes.split(",")}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"load average before start: {load} (other work on this machine slows every number)\n"
        f"radsal rater benchmark: levels {levels}, {args.rounds} trials per rater, "
        f"6 requests per trial, server = `radsal serve` (1 uvicorn worker), {os.cpu_count()} CPUs"
    )
    summary: dict[str, dict[str, list[Level]]] = {}
    for backend in args.backends.split(","):
        summary[backend] = bench_backend(backend, levels, args.rounds, args.time_limit, modes)
    if len(summary) == 2:
        print("\nPostgreSQL / SQLite p95 ratio (all requests):")
        for mode in modes:
            pairs = zip(summary["postgres"][mode], summary["sqlite"][mode], strict=True)
            for a, b in pairs:
                pa = pct([v for vs in a.latencies.values() for v in vs], 95)
                pb = pct([v for vs in b.latencies.values() for v in vs], 95)
                print(f"  {mode:6} N={a.n:<4} {pa:7.1f} / {pb:7.1f} ms = {pa / pb:4.2f}x")
    bad = any(
        lv.errors or lv.lost for per in summary.values() for lvls in per.values() for lv in lvls
    )
    print("\nRESULT:", "errors or lost ratings!" if bad else "zero errors, zero lost ratings")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
