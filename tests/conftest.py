"""Shared test configuration: keep torch small and quiet on a 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest

from app.auth.passwords import use_cheap_hashing_for_tests

use_cheap_hashing_for_tests()  # argon2 at full cost is ~0.5 s per hash on these machines

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
NIH_DIR = os.path.abspath(os.path.join(SHARED, "data", "nih-cxr-pneumonia"))


@pytest.fixture(scope="session")
def nih_dir() -> str:
    """The real NIH chest X-ray subset beside the project; skipped only outside CI."""
    if not os.path.isdir(NIH_DIR):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared NIH data set is missing at {NIH_DIR}")
        pytest.skip("../shared/data/nih-cxr-pneumonia is not present")
    return NIH_DIR
