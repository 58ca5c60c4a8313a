"""Exports a reader can use as they are: comments in every format that has room for text,
the image's own file name (never a path on the server), counts as integers in JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Image, Rating, StudyImage, Trial, User
from app.services.results.export import export_study
from tests.app.analysis_helpers import rate
from tests.factories import make_open_study

COMMENT = "=HYPERLINK(x) edge of the lung, left"
SERVER_PATH = "/srv/radsal/import/2024/patient-17/chest_017.png"


def _setup(db: Session, settings: Settings, make_user: Callable[..., User]) -> tuple[int, int]:
    rater = make_user("rater", "commenter")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=4, size=32)
    rate(db, study, [rater], limit={"commenter": 2})  # two rated, two open: gaps in columns
    first = db.scalars(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.position)
    ).first()
    assert first is not None
    rating = db.scalar(select(Rating).where(Rating.trial_id == first.id))
    assert rating is not None
    rating.comment = COMMENT
    rating.revision = 3
    image = db.get(Image, first.image_id)
    assert image is not None
    image.source_filename = SERVER_PATH
    db.flush()
    assert db.scalar(select(StudyImage.id).where(StudyImage.image_id == image.id))
    return study.id, first.id


def test_long_and_wide_csv_carry_comments_and_file_names(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> None:
    study_id, trial_id = _setup(db, settings, make_user)
    long = pd.read_csv(io.BytesIO(export_study(db, study_id, "csv")[0]), keep_default_na=False)
    rows = long[long["trial"] == trial_id]
    assert len(rows) == 2  # one row per arm
    # The comment is there, neutralised against spreadsheet formulas.
    assert set(rows["comment"]) == {"'" + COMMENT}
    assert set(rows["image_file"]) == {"chest_017.png"}
    assert set(rows["revision"].astype(str)) == {"3"}
    assert not long["image_file"].astype(str).str.contains("/").any()

    wide = pd.read_csv(io.BytesIO(export_study(db, study_id, "wide")[0]), keep_default_na=False)
    row = wide[wide["Trial"] == trial_id].iloc[0]
    assert row["Comment"] == "'" + COMMENT
    assert row["Image file"] == "chest_017.png"


def test_json_carries_comments_file_names_and_integer_counts(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> None:
    study_id, trial_id = _setup(db, settings, make_user)
    body = export_study(db, study_id, "json")[0]
    doc = json.loads(body)
    trial = next(t for t in doc["trials"] if t["trial"] == trial_id)
    assert trial["rating"]["comment"] == COMMENT
    assert trial["rating"]["revision"] == 3 and isinstance(trial["rating"]["revision"], int)
    for t in doc["trials"]:
        assert isinstance(t["position"], int)
        if t["rating"] is not None:
            for key in ("revision", "active_ms", "total_ms"):
                assert isinstance(t["rating"][key], int), (key, t["rating"][key])
    assert b'"revision": 3.0' not in body
    files = {c["file"] for c in doc["cases"]}
    assert "chest_017.png" in files
    assert SERVER_PATH not in body.decode()
