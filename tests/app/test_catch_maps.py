"""Randomised-weights maps for catch trials come from the one generation pipeline (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import SaliencyMap, Trial
from app.services.maps.jobs import enqueue_generation
from app.services.study.studies import create_study
from app.worker import run_pending
from tests.app.fixtures_ml import Catalog, build_catalog

N_IMAGES = 3


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user, n_images=N_IMAGES, n_raters=1)


def test_generation_adds_randomised_maps_for_randomised_catch_trials(
    catalog: Catalog, db: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    trial = db.scalars(select(Trial).where(Trial.study_id == study.id)).first()
    assert trial is not None
    arm = study.arms[0]
    trial.protocol = {"catch": "randomised", "catch_arm": arm.id, "real_side": "left"}
    db.flush()
    job = enqueue_generation(db, study, catalog.admin)
    assert job.total == 2 * N_IMAGES + 1
    db.flush()
    assert run_pending(session_factory, settings) == 2 * N_IMAGES + 1

    maps = db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id == arm.id)).all()
    by_target: dict[str, dict[int, SaliencyMap]] = {}
    for m in maps:
        by_target.setdefault(m.target, {})[m.image_id] = m
    target = next(t for t in by_target if "|" not in t)
    fake = by_target[f"{target}|randomised"]
    assert list(fake) == [trial.image_id]
    real_map, fake_map = by_target[target][trial.image_id], fake[trial.image_id]
    # the same question: the randomised model explains the class the real map explained
    assert fake_map.provenance["variant"] == "randomised"
    assert fake_map.provenance["explained"] == (f"class:{real_map.prediction['target_classes'][0]}")
    real_raw = np.load(settings.data_dir / real_map.raw_path)
    fake_raw = np.load(settings.data_dir / fake_map.raw_path)
    assert real_raw.shape == fake_raw.shape and real_raw.dtype == fake_raw.dtype
    assert not np.allclose(real_raw, fake_raw), "randomised weights give another map"
    # what a rater's browser receives has the same size and format
    real_field = (settings.data_dir / real_map.field_path).read_bytes()
    fake_field = (settings.data_dir / fake_map.field_path).read_bytes()
    assert len(real_field) == len(fake_field) and real_field[:64] == fake_field[:64]
    # file names carry nothing about the variant
    assert "random" not in fake_map.field_path and "random" not in fake_map.raw_path

    # generation resumes: nothing is left to compute
    again = enqueue_generation(db, study, catalog.admin)
    assert again.total == 0
