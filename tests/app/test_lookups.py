"""Lookups that clients (the demo, scripts) use instead of querying the ORM themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import User
from app.services.accounts.users import find_user
from app.services.catalog.images import existing_image_ids, import_image_paths


def test_find_user_returns_the_user_or_none(db: Session, make_user: Callable[..., User]) -> None:
    alice = make_user(username="alice")
    assert find_user(db, "alice") is alice
    assert find_user(db, "nobody") is None


def test_existing_image_ids_drops_deleted_and_unknown_ids(
    db: Session, settings: Settings, tmp_path: Path
) -> None:
    paths = []
    for n in range(3):
        path = tmp_path / f"case{n}.png"
        PILImage.fromarray(np.full((16, 16), 40 * n, np.uint8), mode="L").save(path)
        paths.append(path)
    images = import_image_paths(db, settings, paths, None, None, None)
    ids = [image.id for image in images]
    db.delete(images[1])
    db.flush()
    assert existing_image_ids(db, [*ids, 10**6]) == {ids[0], ids[2]}
    assert existing_image_ids(db, []) == set()
