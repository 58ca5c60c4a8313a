"""The exported R script runs as shipped on a real export (R for real; always under CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import User
from app.services.results.export import export_study
from app.stats.clmm_r import INSTALL_HINT
from tests.app.analysis_helpers import add_repeats, make_rated_study, rate

pytestmark = pytest.mark.skipif(
    shutil.which("Rscript") is None and os.environ.get("CI") != "true",
    reason=f"Rscript not installed ({INSTALL_HINT}); CI installs it and runs this test",
)


def test_exported_script_runs_as_shipped_next_to_the_export(
    db: Session, settings: Settings, make_user: Callable[..., User], tmp_path: Path
) -> None:
    raters = [make_user("rater", f"reader{i}") for i in range(3)]
    study = make_rated_study(db, settings.data_dir, raters, n_images=10)
    add_repeats(db, study, raters[0], 2)
    rate(db, study, raters[:1])  # repeats are in the CSV and must be left out by the script
    csv, _, csv_name = export_study(db, study.id, "csv")
    script, _, script_name = export_study(db, study.id, "r")
    (tmp_path / csv_name).write_bytes(csv)
    (tmp_path / script_name).write_bytes(script)

    # As shipped: no arguments, the CSV found by its exported name.
    done = subprocess.run(
        ["Rscript", script_name], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Arm effects (odds ratios vs 'standard'" in done.stdout
    assert "Sensitivity model (random arm slope per rater)" in done.stdout

    # The same file with --json, as radsal runs it for the analysis page.
    done = subprocess.run(
        ["Rscript", "--vanilla", script_name, "--json=out.json", "--sensitivity=no"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["error"] is None
    assert result["data"]["n_obs"] == 3 * 10 * 2  # first readings only
    (effect,) = result["primary"]["arm_effects"]
    assert effect["arm"] == "dual-BN clean" and effect["odds_ratio"] > 1
    assert result["software"]["ordinal"]
