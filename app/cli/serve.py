"""`radsal serve`: run the web application with uvicorn.

Before serving, migrations are applied and, on an empty database, a first admin is created and
its login printed once (the only time the password exists outside an argon2 hash).
"""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the web application")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    p.add_argument(
        "--no-bootstrap-admin",
        action="store_true",
        help="do not create a first admin on an empty database",
    )
    p.set_defaults(func=main)


def bootstrap(host: str, port: int) -> None:
    """Apply migrations and make sure an admin can log in; print the login if one was made."""
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade_database
    from app.services.accounts.users import ensure_admin

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    upgrade_database(engine)
    with make_sessionmaker(engine).begin() as db:
        admin, password = ensure_admin(db)
        username = admin.username
    engine.dispose()
    if password is not None:
        print(f"radsal: created the first admin. Log in at http://{host}:{port}/login")
        print(f"radsal:   username: {username}")
        print(f"radsal:   password: {password}")
        print("radsal: (shown once; change it or create named accounts under Admin → Users)")


def main(args: argparse.Namespace) -> int:
    import uvicorn

    if not args.no_bootstrap_admin:
        bootstrap(args.host, args.port)
    uvicorn.run(
        "app.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    return 0
