"""``radsal demo --reset``: start over. SQLite only: it deletes the database file, and we never
drop a server database on a user's behalf."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.config import Settings
from app.demo.manifest import demo_dir, manifest_path
from app.demo.options import DemoError

# Files and folders the app itself keeps in the data directory (all referenced by the DB).
STORE_DIRS = ("images", "checkpoints", "maps", "masks")


def reset_demo(settings: Settings) -> list[Path]:
    """Delete the demo's artefacts and the SQLite database; refuse any server database."""
    url = settings.resolved_database_url()
    if not url.startswith("sqlite"):
        raise DemoError(
            "--reset deletes the database, so it only works on the embedded SQLite default; "
            "this installation uses a database server. Drop it yourself if you mean it."
        )
    data = settings.data_dir
    targets = [manifest_path(settings), demo_dir(settings)]
    targets += [data / d for d in STORE_DIRS]
    db_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if db_file is not None:
        targets += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
    removed = []
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
        elif target.exists():
            target.unlink()
            removed.append(target)
    return removed
