"""Shared fixtures for the ml tests: tiny synthetic data sets, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ml.data.synthetic import make_lesion_dataset

NIH_DIR = Path(os.environ.get("RADSAL_NIH_DIR", "/work/shared/data/nih-cxr-pneumonia"))


@pytest.fixture(autouse=True)
def _seed_and_threads() -> Iterator[None]:
    """Seeded, single-threaded tests (tiny tensors: extra threads only add contention on a
    shared 2-core runner); the thread count is restored afterwards."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 train / 60 val / 30 test synthetic lesion images at 32 px, three classes."""
    out = tmp_path_factory.mktemp("syn32")
    return make_lesion_dataset(out, n_train=150, n_val=60, n_test=30, image_size=32, seed=1)


@pytest.fixture
def nih_dir() -> Path:
    """The real NIH subset; skipped when absent, except in CI where its absence is a failure."""
    if not (NIH_DIR / "labels.csv").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the NIH data set is missing at {NIH_DIR}")
        pytest.skip(f"NIH data set not present at {NIH_DIR}")
    return NIH_DIR
