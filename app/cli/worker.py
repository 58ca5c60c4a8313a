"""`radsal worker`: run generation jobs outside the web server (set RADSAL_WORKER=external).

Several workers may run at once on PostgreSQL (tasks are claimed with SKIP LOCKED); on SQLite
a second worker waits for the first (a file lease in the data directory). A worker beats while
it computes (RADSAL_TASK_HEARTBEAT_SECONDS); killing it leaves its task to the next worker once
the beat is RADSAL_TASK_STALE_SECONDS old, and a task that killed RADSAL_TASK_MAX_ATTEMPTS
workers fails its job instead of being retried forever.
"""

from __future__ import annotations

import argparse
import sys
import threading


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("worker", help="run saliency generation jobs (outside the server)")
    p.add_argument("--once", action="store_true", help="drain the queue, then exit")
    p.add_argument(
        "--poll-seconds", type=float, default=2.0, help="sleep between polls (default 2)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade_database
    from app.worker import poll_forever, run_pending

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    upgrade_database(engine)
    factory = make_sessionmaker(engine)
    bar = tqdm(total=0, unit="map", desc="maps", file=sys.stderr, disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if args.once:
            computed = run_pending(factory, settings, progress=progress)
            bar.close()
            print(f"computed {computed} map(s)", file=sys.stderr)
            return 0
        poll_forever(
            factory,
            settings,
            poll_seconds=args.poll_seconds,
            progress=progress,
            stop=threading.Event(),
        )
        return 0
    finally:
        bar.close()
        engine.dispose()
