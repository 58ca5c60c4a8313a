"""`radsal db upgrade|downgrade|current`: schema migrations on the configured database."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database schema migrations")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    dbsub.required = True
    up = dbsub.add_parser("upgrade", help="apply migrations (default: to the latest)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=main)
    down = dbsub.add_parser("downgrade", help="revert migrations (e.g. -1, base)")
    down.add_argument("revision")
    down.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.db import make_engine
    from app.migrate import downgrade_database, upgrade_database

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    if args.db_command == "upgrade":
        upgrade_database(engine, args.revision)
    else:
        downgrade_database(engine, args.revision)
    print(f"database {args.db_command}d to {args.revision}")
    return 0
